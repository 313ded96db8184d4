//! IPMI v2.0 over LAN (RMCP+) client.
