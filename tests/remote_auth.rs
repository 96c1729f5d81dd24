//! `grpcs://` remotes and headers from the environment, against a REAPI
//! server in this test process that records what reaches it: the
//! `ADMF_REMOTE_HEADER` header arrives with each call, a TLS server whose
//! certificate is trusted through `ADMF_REMOTE_CA` is reached, and one
//! that is not trusted is never spoken to (the build goes on local-only).

mod common;

use std::sync::{Arc, Mutex};

use bazel_remote_apis::build::bazel::remote::execution::v2::capabilities_server::{
    Capabilities, CapabilitiesServer,
};
use bazel_remote_apis::build::bazel::remote::execution::v2::{
    GetCapabilitiesRequest, ServerCapabilities,
};
use common::Project;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// The `authorization` header of each call that reached the server.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Option<String>>>>,
}

#[tonic::async_trait]
impl Capabilities for Recorder {
    async fn get_capabilities(
        &self,
        request: Request<GetCapabilitiesRequest>,
    ) -> Result<Response<ServerCapabilities>, Status> {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        self.calls.lock().unwrap().push(auth);
        // Only capabilities are served: admf then drops the remote for the
        // build, which must still succeed.
        Err(Status::unimplemented("a recording server"))
    }
}

/// A server on 127.0.0.1, over TLS when `identity` is given; its port.
fn serve(recorder: Recorder, identity: Option<Identity>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let mut builder = Server::builder();
            if let Some(identity) = identity {
                builder = builder
                    .tls_config(ServerTlsConfig::new().identity(identity))
                    .unwrap();
            }
            builder
                .add_service(CapabilitiesServer::new(recorder))
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .unwrap();
        });
    });
    port
}

fn project() -> Project {
    let p = Project::new();
    p.file(".admf", "").file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      outputs: [a.txt]\n      run: echo hi > a.txt\n",
    );
    p
}

fn build(p: &Project, remote: &str, env: &[(&str, &str)]) -> common::Output {
    let mut all = env.to_vec();
    all.push(("ADMF_REMOTE", remote));
    let out = p.admf_env(&["build", "wf.yaml"], &all);
    assert_eq!(out.code, 0, "a remote never fails a build:\n{}", out.stderr);
    assert_eq!(p.read("a.txt"), "hi\n");
    out
}

/// One build against a recording server, over TLS with a fresh
/// self-signed certificate for `localhost` when `tls`: the
/// `authorization` value of each call the server saw, and the build's
/// output. `{port}` in `url` becomes the server's port, and `{ca}` in an
/// environment value the path of a file holding its certificate.
fn build_against(
    tls: bool,
    url: &str,
    env: &[(&str, &str)],
) -> (Vec<Option<String>>, common::Output) {
    let recorder = Recorder::default();
    let p = project();
    let identity = tls.then(|| {
        let (cert, key) = self_signed();
        p.file("ca.pem", &cert);
        Identity::from_pem(&cert, &key)
    });
    let port = serve(recorder.clone(), identity);
    let ca = p.path("ca.pem").to_str().unwrap().to_string();
    let env: Vec<(&str, String)> = env
        .iter()
        .map(|&(k, v)| (k, v.replace("{ca}", &ca)))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = build(&p, &url.replace("{port}", &port.to_string()), &env);
    let calls = recorder.calls.lock().unwrap().clone();
    (calls, out)
}

#[test]
fn the_header_from_the_environment_reaches_the_server() {
    let (calls, _) = build_against(
        false,
        "grpc://127.0.0.1:{port}",
        &[("ADMF_REMOTE_HEADER", "authorization=Bearer t0ken")],
    );
    assert!(!calls.is_empty(), "the server saw no call");
    assert!(
        calls.iter().all(|c| c.as_deref() == Some("Bearer t0ken")),
        "{calls:?}"
    );
}

#[test]
fn without_the_variable_no_header_is_sent() {
    let (calls, _) = build_against(
        false,
        "grpc://127.0.0.1:{port}",
        &[("ADMF_REMOTE_HEADER", "")],
    );
    assert!(!calls.is_empty());
    assert!(calls.iter().all(Option::is_none), "{calls:?}");
}

#[test]
fn a_malformed_header_is_bad_input() {
    let p = project();
    let out = p.admf_env(
        &["build", "wf.yaml"],
        &[
            ("ADMF_REMOTE", "grpc://127.0.0.1:1"),
            ("ADMF_REMOTE_HEADER", "no equals sign"),
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("ADMF_REMOTE_HEADER"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

#[test]
fn a_tls_server_trusted_through_the_ca_variable_is_reached_with_the_header() {
    let (calls, out) = build_against(
        true,
        "grpcs://localhost:{port}",
        &[
            ("ADMF_REMOTE_CA", "{ca}"),
            ("ADMF_REMOTE_HEADER", "authorization=Bearer over-tls"),
        ],
    );
    assert!(
        !calls.is_empty(),
        "no call got through TLS:\n{}",
        out.stderr
    );
    assert!(
        calls
            .iter()
            .all(|c| c.as_deref() == Some("Bearer over-tls")),
        "{calls:?}"
    );
}

#[test]
fn a_tls_server_that_is_not_trusted_is_never_spoken_to() {
    let (calls, out) = build_against(
        true,
        "grpcs://localhost:{port}",
        &[
            ("ADMF_REMOTE_CA", ""),
            ("ADMF_REMOTE_HEADER", "authorization=Bearer secret"),
        ],
    );
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(
        out.stderr.matches("admf: warning").count(),
        1,
        "one warning:\n{}",
        out.stderr
    );
}

#[test]
fn plain_grpc_cannot_reach_a_tls_server() {
    let (calls, _) = build_against(true, "grpc://127.0.0.1:{port}", &[]);
    assert!(calls.is_empty(), "{calls:?}");
}
