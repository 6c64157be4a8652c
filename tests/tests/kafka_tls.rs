//! The Kafka bridge to a broker that requires TLS client certificates, as Amazon MSK
//! with TLS client authentication does (`infra/msk.yaml`, `ClientAuth=tls`): a Tansu
//! broker reached only through a TLS endpoint that requires a certificate signed by the
//! test's CA. The bridge, configured with librdkafka's SSL settings, publishes what a
//! FIX counterparty sends; with a certificate from another CA nothing gets through.

use fix_e2e::client::FixClient;
use fix_e2e::interop::free_port;
use fix_e2e::kafka::{client, create_topics_with, payloads_with};
use fix_e2e::pki::Ca;
use fix_engine::config::AppKind;
use fix_engine::kafka::{KafkaSection, Payload};
use fix_engine::{Engine, EngineConfig};
use fix_session::SessionId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A Tansu broker whose only advertised address is a TLS endpoint requiring client
/// certificates signed by `ca`.
struct TlsBroker {
    tansu: std::process::Child,
    /// The TLS endpoint (`HOST:PORT`).
    brokers: String,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.tansu.kill();
        let _ = self.tansu.wait();
    }
}

async fn tls_broker(dir: &Path, ca: &Ca) -> TlsBroker {
    let (plain, tls) = (free_port(), free_port());
    let tansu = std::env::var("FIX_TEST_TANSU")
        .expect("FIX_TEST_TANSU: the tansu binary (scripts/test.sh sets it)");
    let tansu = std::process::Command::new(tansu)
        .args(["broker", "--listener-url"])
        .arg(format!("tcp://127.0.0.1:{plain}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{tls}"))
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tansu starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", plain))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "tansu does not listen on {plain}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (cert, key) = ca.leaf(dir, "broker", &["127.0.0.1", "localhost"]);
    let config = fix_engine::tls::server_config(&fix_engine::config::TlsSection {
        cert: Some(cert),
        key: Some(key),
        ca: Some(ca.pem.clone()),
        server_name: None,
    })
    .expect("broker TLS");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", tls))
        .await
        .expect("bind the TLS endpoint");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client without a certificate the CA signed stops here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut broker) = tokio::net::TcpStream::connect(("127.0.0.1", plain)).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                }
            });
        }
    });
    TlsBroker {
        tansu,
        brokers: format!("127.0.0.1:{tls}"),
    }
}

/// librdkafka's settings for mutual TLS with `cert`/`key`, trusting `ca`.
fn ssl(ca: &Path, cert: &Path, key: &Path) -> BTreeMap<String, String> {
    [
        ("security.protocol", "SSL".to_string()),
        ("ssl.ca.location", ca.display().to_string()),
        ("ssl.certificate.location", cert.display().to_string()),
        ("ssl.key.location", key.display().to_string()),
        // The test's certificates name 127.0.0.1 as an IP address.
        ("ssl.endpoint.identification.algorithm", "none".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Everything on `topic` from its start, read until it stays quiet for `idle`.
async fn read(
    brokers: &str,
    settings: &BTreeMap<String, String>,
    topic: &str,
    idle: Duration,
) -> Vec<String> {
    let (brokers, settings, topic) = (brokers.to_string(), settings.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || payloads_with(&brokers, &settings, &topic, idle))
        .await
        .expect("reader")
        .into_iter()
        .map(|p| p.replace('\x01', "|"))
        .collect()
}

/// An acceptor engine (EXEC ← CLIENT) with the bridge on `brokers` with `settings`.
async fn bridge(
    dir: &Path,
    brokers: &str,
    settings: BTreeMap<String, String>,
    topic: &str,
) -> Engine {
    let toml = format!(
        "[engine]\ndata_dir = '{}'\napp = 'kafka'\n\
         [[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'EXEC'\ntarget_comp_id = 'CLIENT'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n",
        dir.display()
    );
    let mut config = EngineConfig::from_toml(&toml, "bridge").expect("config");
    config.engine.app = AppKind::Kafka;
    config.engine.kafka = Some(KafkaSection {
        brokers: brokers.to_string(),
        inbound_topic: topic.to_string(),
        outbound_topic: format!("{topic}-out"),
        events_topic: format!("{topic}-events"),
        group_id: Some(format!("{topic}-group")),
        payload: Payload::Raw,
        buffer_messages: 1000,
        client: settings,
    });
    Engine::start(config).await.expect("engine with the bridge")
}

/// A counterparty logs on and sends one NewOrderSingle with ClOrdID `cl`.
async fn send_order(engine: &Engine, cl: &str) {
    let addr = engine
        .listen_addr(&SessionId::new("FIX.4.4", "EXEC", "CLIENT"))
        .expect("port");
    let mut c = FixClient::connected("FIX.4.4", addr)
        .await
        .expect("connect");
    c.send("35=A|34=1|49=CLIENT|52=<TIME>|56=EXEC|98=0|108=30|")
        .await
        .expect("logon");
    c.next(Duration::from_secs(5)).await;
    c.send(&format!(
        "35=D|34=2|49=CLIENT|52=<TIME>|56=EXEC|11={cl}|21=1|55=IBM|54=1|60=<TIME>|38=100|40=1|"
    ))
    .await
    .expect("order");
    // Keep the connection until the order has had time to reach the bridge.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000);
    format!("{tag}-{n}")
}

fn files(dir: &Path, ca: &Ca, name: &str) -> (PathBuf, PathBuf) {
    ca.leaf(dir, name, &["bridge.fix.test"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_publishes_over_mutual_tls_with_a_certificate_the_brokers_ca_signed() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new(dir.path(), "msk-ca");
    let broker = tls_broker(dir.path(), &ca).await;
    let (cert, key) = files(dir.path(), &ca, "bridge");
    let settings = ssl(&ca.pem, &cert, &key);
    let topic = unique("tls-from");
    create_topics_with(
        &broker.brokers,
        &settings,
        &[&topic, &format!("{topic}-out"), &format!("{topic}-events")],
    )
    .await;
    let engine = bridge(
        &dir.path().join("data"),
        &broker.brokers,
        settings.clone(),
        &topic,
    )
    .await;
    send_order(&engine, "TLS-1").await;
    let seen = read(&broker.brokers, &settings, &topic, Duration::from_secs(3)).await;
    assert!(
        seen.iter()
            .any(|m| m.contains("|35=D|") && m.contains("|11=TLS-1|")),
        "the order reached the topic over TLS: {seen:?}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_whose_certificate_another_ca_signed_gets_nothing_through() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new(dir.path(), "msk-ca");
    let other = Ca::new(dir.path(), "other-ca");
    let broker = tls_broker(dir.path(), &ca).await;
    let (cert, key) = files(dir.path(), &ca, "reader");
    let good = ssl(&ca.pem, &cert, &key);
    let (cert, key) = files(dir.path(), &other, "intruder");
    let bad = ssl(&ca.pem, &cert, &key);
    let topic = unique("tls-refused");
    create_topics_with(
        &broker.brokers,
        &good,
        &[&topic, &format!("{topic}-out"), &format!("{topic}-events")],
    )
    .await;
    let data = dir.path().join("data");
    let engine = bridge(&data, &broker.brokers, bad, &topic).await;
    send_order(&engine, "NOPE-1").await;
    let seen = read(&broker.brokers, &good, &topic, Duration::from_secs(3)).await;
    assert!(
        seen.is_empty(),
        "nothing reached the broker without a certificate its CA signed: {seen:?}"
    );
    // The bridge is still waiting for the broker to take the order. Shutting down ends
    // that wait (the session's logout is bounded by 5 s) and leaves the order
    // unprocessed in the journal...
    tokio::time::timeout(Duration::from_secs(15), engine.shutdown())
        .await
        .expect("the engine shuts down while the broker refuses its bridge");
    // ... so the same engine started with a certificate the broker's CA signed
    // publishes it.
    let engine = bridge(&data, &broker.brokers, good.clone(), &topic).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = read(&broker.brokers, &good, &topic, Duration::from_secs(2)).await;
        if seen.iter().any(|m| m.contains("|11=NOPE-1|")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the order kept in the journal reached the broker after the restart: {seen:?}"
        );
    }
    engine.shutdown().await;
}

#[test]
fn tls_is_compiled_into_the_bridge() {
    // librdkafka refuses security.protocol=SSL at configuration time when built without
    // OpenSSL ("Unsupported value "SSL" ... OpenSSL not available").
    let settings: BTreeMap<String, String> = [("security.protocol".to_string(), "SSL".to_string())]
        .into_iter()
        .collect();
    let producer: Result<rdkafka::producer::BaseProducer, _> =
        client("127.0.0.1:1", &settings).create();
    assert!(producer.is_ok(), "{:?}", producer.err());
}
