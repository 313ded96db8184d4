//! The provider service: the appliances of many racks tunnel into it; it keeps the state of
//! their machines and decides what each boots and whether it is powered.

pub mod lifecycle;
pub mod model;
pub mod store;
pub mod tls;
pub mod token_output;
