use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use provider::proto::plugin::grpc_controller_client::GrpcControllerClient;
use provider::proto::tfplugin6::provider_client::ProviderClient;
use provider::proto::tfplugin6::{DynamicValue, get_provider_schema, plan_resource_change};

const BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-platform");
const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

#[test]
fn run_by_hand_prints_a_human_message_and_exits_1() {
    let out = Command::new(BIN)
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plugin for Terraform"), "{stderr}");
    assert!(stderr.contains("--debug"), "{stderr}");
}

#[test]
fn refuses_a_terraform_without_protocol_6() {
    let out = Command::new(BIN)
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "4,5")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only version 6"));
}

struct Started {
    child: std::process::Child,
    addr: String,
}

fn start() -> Started {
    let mut child = Command::new(BIN)
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .env_remove("PLATFORM_CATALOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("handshake");
    let parts: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(parts.len(), 6, "{line:?}");
    assert_eq!(&parts[..3], ["1", "6", "tcp"], "{line:?}");
    assert_eq!(parts[4], "grpc");
    assert_eq!(parts[5], "", "no cert without PLUGIN_CLIENT_CERT");
    Started {
        child,
        addr: format!("http://{}", parts[3]),
    }
}

#[tokio::test]
async fn serves_schema_and_exits_promptly_on_shutdown() {
    let mut started = start();
    let channel = tonic::transport::Endpoint::from_shared(started.addr.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    let mut client = ProviderClient::new(channel.clone()).max_decoding_message_size(256 << 20);
    let schema = client
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .expect("schema")
        .into_inner();
    assert!(schema.diagnostics.is_empty(), "{:?}", schema.diagnostics);
    assert!(
        schema
            .resource_schemas
            .contains_key("platform_postgres_database")
    );
    assert!(schema.data_source_schemas.contains_key("platform_catalog"));
    for (name, resource) in &schema.resource_schemas {
        assert!(
            resource.block.is_some(),
            "{name} has a block (Terraform 1.0 needs it)"
        );
    }

    // A malformed value is a diagnostic, not a gRPC error.
    let bad = client
        .plan_resource_change(plan_resource_change::Request {
            type_name: "platform_postgres_database".into(),
            proposed_new_state: Some(DynamicValue {
                msgpack: vec![0x92, 0xc1],
                json: vec![],
            }),
            ..Default::default()
        })
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(bad.diagnostics.len(), 1, "{:?}", bad.diagnostics);

    let began = Instant::now();
    GrpcControllerClient::new(channel)
        .shutdown(provider::proto::plugin::Empty {})
        .await
        .expect("shutdown answered");
    loop {
        if let Some(status) = started.child.try_wait().expect("wait") {
            assert!(status.success());
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(1), "exits promptly");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn ignores_sigint() {
    let mut started = start();
    let pid = started.child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        started.child.try_wait().expect("wait").is_none(),
        "still running"
    );
    let _ = started.child.kill();
    let _ = started.child.wait();
}

#[tokio::test]
async fn debug_mode_prints_reattach_config_and_serves_plaintext() {
    let mut child = Command::new(BIN)
        .arg("--debug")
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .env_remove("PLATFORM_CATALOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut reattach = None;
    for _ in 0..10 {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("reads") == 0 {
            break;
        }
        if let Some(json) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS='") {
            reattach = Some(json.trim_end_matches('\'').to_owned());
            break;
        }
    }
    let reattach: serde_json::Value =
        serde_json::from_str(&reattach.expect("prints TF_REATTACH_PROVIDERS")).expect("json");
    let entry = &reattach["registry.terraform.io/platform/platform"];
    assert_eq!(entry["Test"], true, "protocol 6 needs Test: true");
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Pid"], child.id());
    let addr = entry["Addr"]["String"].as_str().expect("address");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    let schema = ProviderClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .expect("schema")
        .into_inner();
    assert!(
        schema
            .resource_schemas
            .contains_key("platform_postgres_database")
    );
    // In debug mode Ctrl-C stops the server.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let began = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(5), "stops on SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    }
}
