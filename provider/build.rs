//! Generates the COSI State gRPC client and server (tonic) around the hand-written prost
//! messages in `src/omni/proto.rs`. tonic-build's `manual` builder takes the service as Rust,
//! so the build needs neither `protoc` nor a `.proto` parser: only cargo, on a clean machine.

use tonic_build::manual::{Builder, Method, Service};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // (method, route, request, response, server streaming): the calls the adapter makes, as
    // in COSI's `service State` (cosi-project/specification, proto/v1alpha1/state.proto).
    let calls = [
        ("get", "Get", "GetRequest", "GetResponse", false),
        ("list", "List", "ListRequest", "ListResponse", true),
        ("create", "Create", "CreateRequest", "CreateResponse", false),
        ("update", "Update", "UpdateRequest", "UpdateResponse", false),
        ("watch", "Watch", "WatchRequest", "WatchResponse", true),
    ];
    let mut service = Service::builder().name("State").package("cosi.resource");
    for (name, route, input, output, streaming) in calls {
        let mut method = Method::builder()
            .name(name)
            .route_name(route)
            .input_type(format!("crate::omni::proto::{input}"))
            .output_type(format!("crate::omni::proto::{output}"))
            .codec_path("tonic_prost::ProstCodec");
        if streaming {
            method = method.server_streaming();
        }
        service = service.method(method.build());
    }
    Builder::new().compile(&[service.build()]);
}
