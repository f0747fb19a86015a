//! The ports and secrets: admin calls only on the admin port, TLS on the cache API, and no
//! secret in the log.

mod common;

use cachet::operate::with_token;
use cachet::proto::cache_client::CacheClient;
use cachet::proto::GetStatsRequest;
use common::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_are_served_on_the_admin_port_only() {
    let Fixture { sidecar, .. } = &Fixture::start().await;
    let mut on_client_port = cachet::proto::admin_client::AdminClient::new(sidecar.channel().await);
    let refused = on_client_port
        .get_stats(with_token(GetStatsRequest {}, ADMIN_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented);
    assert_eq!(sidecar.stats().await.entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_api_speaks_tls_when_configured() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let Fixture { sidecar, .. } = &Fixture::with_config(&format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    ))
    .await;

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(certified.cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", sidecar.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS client with the CA connects");
    let answer = CacheClient::new(channel)
        .complete(question("acme", "How do I reset my password?"))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.answer.contains("reset my password"));

    // Plain text on the TLS port gets nowhere.
    let plain = Channel::from_shared(format!("http://{}", sidecar.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let refused = CacheClient::new(channel)
            .complete(question("acme", "How do I reset my password?"))
            .await;
        assert!(
            refused.is_err(),
            "a plain-text call was answered on the TLS port"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    const PROVIDER_KEY: &str = "sk-provider-secret-4f9a";
    const CLIENT_KEY: &str = "sk-client-secret-77c1";
    let Fixture { sidecar, .. } = &Fixture::with_env(
        "[upstream]\napi_key_env = \"CACHET_TEST_PROVIDER_KEY\"\n",
        &[
            ("CACHET_TEST_PROVIDER_KEY", PROVIDER_KEY),
            ("CACHET_LOG", "trace,hnsw_rs=warn"),
        ],
    )
    .await;
    // A miss (the provider key goes upstream), a hit, an admin call, a refused admin call and
    // an HTTP request carrying the client's own key, all at the most verbose log level.
    let mut client = sidecar.client().await;
    for _ in 0..2 {
        client
            .complete(question("acme", "How do I reset my password?"))
            .await
            .unwrap();
    }
    let mut admin = sidecar.admin().await;
    admin
        .get_stats(with_token(GetStatsRequest {}, ADMIN_TOKEN))
        .await
        .unwrap();
    admin
        .get_stats(with_token(GetStatsRequest {}, "wrong-token"))
        .await
        .unwrap_err();
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", sidecar.openai_base_url()))
        .bearer_auth(CLIENT_KEY)
        .header("x-cachet-tenant", "acme")
        .json(&serde_json::json!({
            "model": "gpt-test",
            "messages": [{"role": "user", "content": "Where is my parcel?"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let log = sidecar.log();
    assert!(
        log.contains("answered upstream"),
        "the log is being written"
    );
    for secret in [PROVIDER_KEY, CLIENT_KEY, ADMIN_TOKEN, "wrong-token"] {
        assert!(!log.contains(secret), "`{secret}` leaked into the log");
    }
}
