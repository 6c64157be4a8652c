//! Configuration parsing and checking.
use super::*;

fn one(extra: &str) -> Result<Vec<SessionPlan>, ConfigError> {
    let text = format!(
        "[[session]]\nbegin_string = \"FIX.4.2\"\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\nrole = \"acceptor\"\nlisten = \"127.0.0.1:1\"\n{extra}"
    );
    EngineConfig::from_toml(&text, "test.toml")?.plans()
}

#[test]
fn a_minimal_acceptor_plans() {
    let p = one("").expect("valid");
    assert_eq!(p[0].config.id.to_string(), "FIX.4.2:A->B");
}

#[test]
fn errors_name_the_key_the_value_and_what_is_allowed() {
    let e = one("start_time = \"8am\"\nend_time = \"17:00:00\"")
        .expect_err("bad time")
        .to_string();
    assert!(
        e.contains("start_time") && e.contains("8am") && e.contains("HH:MM:SS"),
        "{e}"
    );
    let e = one("time_zone = \"Mars/Olympus\"\nstart_time = \"08:00:00\"\nend_time = \"17:00:00\"")
        .expect_err("bad tz")
        .to_string();
    assert!(e.contains("time_zone") && e.contains("Mars/Olympus"), "{e}");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let e = one("hearbeat_interval = 30").expect_err("typo").to_string();
    assert!(e.contains("hearbeat_interval"), "{e}");
}

#[test]
fn a_memory_store_without_room_is_refused() {
    let e = replication("store = 'memory'\nmemory_store_mb = 0")
        .expect_err("no room")
        .to_string();
    assert!(
        e.contains("memory_store_mb") && e.contains("at least 1"),
        "{e}"
    );
    replication("store = 'memory'\nmemory_store_mb = 8").expect("8 MiB");
}

fn replication(engine_extra: &str) -> Result<Vec<SessionPlan>, ConfigError> {
    let text = format!(
        "[engine]\n{engine_extra}\n[[session]]\nbegin_string = 'FIX.4.4'\nsender_comp_id = 'A'\ntarget_comp_id = 'B'\nrole = 'acceptor'\nlisten = '127.0.0.1:0'\n"
    );
    EngineConfig::from_toml(&text, "test.toml")?.plans()
}

#[test]
fn replication_settings_are_checked_with_the_fix_named() {
    let lease = "[engine.lease]\nurl = 'sqlite://x.db'\n";
    let e = replication("[engine.replication]\nlisten = '127.0.0.1:9901'")
        .expect_err("no lease")
        .to_string();
    assert!(e.contains("[engine.lease]"), "{e}");
    let e = replication(&format!(
        "{lease}[engine.replication]\npeers = ['127.0.0.1:9902']"
    ))
    .expect_err("no listen")
    .to_string();
    assert!(
        e.contains("replication.listen") && e.contains("127.0.0.1:9901"),
        "{e}"
    );
    let e = replication(&format!("{lease}[engine.replication]\nlisten = 'nowhere'"))
        .expect_err("bad address")
        .to_string();
    assert!(e.contains("IP:PORT"), "{e}");
    let e = replication(&format!("{lease}[engine.replication]\ndurability = 'sql'"))
        .expect_err("sql on sqlite")
        .to_string();
    assert!(e.contains("PostgreSQL or MySQL"), "{e}");
    let e = replication(&format!(
        "{lease}[engine.replication]\nlisten = '127.0.0.1:1'\ndurability = 'quorum'"
    ))
    .expect_err("unknown mode")
    .to_string();
    assert!(e.contains("quorum"), "{e}");
    for mode in ["replicated", "replicated-written"] {
        let e = replication(&format!(
            "{lease}[engine.replication]\nlisten = '127.0.0.1:9901'\npeers = ['127.0.0.1:9902']\ndurability = '{mode}'"
        ))
        .expect_err("no stable owner")
        .to_string();
        assert!(
            e.contains("lease.owner") && e.contains("in-sync set"),
            "{mode}: {e}"
        );
    }
    replication(&format!(
        "{lease}owner = 'engine-a'\n[engine.replication]\nlisten = '127.0.0.1:9901'\npeers = ['127.0.0.1:9902']\ndurability = 'replicated-written'"
    ))
    .expect("valid");
    let e = replication("[engine.lease]\nurl = 'sqlite://x.db'\nsafety_margin_ms = 0\n")
        .expect_err("no margin")
        .to_string();
    assert!(e.contains("safety_margin_ms"), "{e}");
    let e = replication("[engine.lease]\nurl = 'sqlite://x.db'\nowner = 'a,b'\n")
        .expect_err("comma")
        .to_string();
    assert!(e.contains("without commas"), "{e}");
    replication(&format!(
        "{lease}owner = 'engine-a'\n[engine.replication]\nlisten = '127.0.0.1:9901'\npeers = ['127.0.0.1:9902']\ndurability = 'replicated'\non_standby_loss = 'halt'"
    ))
    .expect("valid");
    replication(
        "[engine.lease]\nurl = 'postgres://db/fix'\n[engine.replication]\ndurability = 'sql'",
    )
    .expect("sql needs no listen address");
}

#[test]
fn the_lease_url_can_come_from_the_environment() {
    let base = "[[session]]\nbegin_string = \"FIX.4.2\"\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\nrole = \"acceptor\"\nlisten = \"127.0.0.1:1\"\n";
    let with = |lease: &str| format!("[engine.lease]\n{lease}\n{base}");
    // PATH is set in every test environment.
    let path = std::env::var("PATH").unwrap_or_default();
    let c = EngineConfig::from_toml(&with("url_env = \"PATH\""), "t").expect("from PATH");
    assert_eq!(c.engine.lease.map(|l| l.url), Some(path));
    let e = EngineConfig::from_toml(&with("url_env = \"FIX_TEST_SURELY_UNSET_VAR\""), "t")
        .expect_err("unset variable")
        .to_string();
    assert!(e.contains("FIX_TEST_SURELY_UNSET_VAR"), "{e}");
    let e = EngineConfig::from_toml(&with("url = \"sqlite://x\"\nurl_env = \"PATH\""), "t")
        .expect_err("both")
        .to_string();
    assert!(e.contains("not both"), "{e}");
    let e = EngineConfig::from_toml(&with("group = \"g\""), "t")
        .expect_err("neither")
        .to_string();
    assert!(e.contains("lease.url"), "{e}");
}

#[test]
fn replication_peers_may_be_host_names() {
    let text = "[engine]\nstore = \"journal\"\n[engine.lease]\nurl = \"sqlite://x\"\n[engine.replication]\nlisten = \"127.0.0.1:9901\"\npeers = [\"engine-1.engine-peers.ns.svc:9901\", \"10.0.0.2:9901\"]\n";
    let c = EngineConfig::from_toml(text, "t").expect("parses");
    let r = c.engine.replication.expect("replication");
    let (_, peers) = r.addresses().expect("named peers are fine");
    assert_eq!(
        peers,
        ["engine-1.engine-peers.ns.svc:9901", "10.0.0.2:9901"]
    );
    let bad = text.replace("10.0.0.2:9901", "no-port");
    let r = EngineConfig::from_toml(&bad, "t")
        .expect("parses")
        .engine
        .replication
        .expect("r");
    let e = r.addresses().expect_err("no port").to_string();
    assert!(e.contains("no-port") && e.contains("HOST:PORT"), "{e}");
}

#[test]
fn the_kafka_bridge_section_is_checked_against_app_and_names_the_mistake() {
    let session = "[[session]]\nbegin_string = \"FIX.4.4\"\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\nrole = \"acceptor\"\nlisten = \"127.0.0.1:9878\"\n";
    let plan = |engine: &str| {
        EngineConfig::from_toml(&format!("{engine}{session}"), "t")
            .expect("parses")
            .plans()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let ok = "[engine]\napp = \"kafka\"\n[engine.kafka]\nbrokers = \"127.0.0.1:9092\"\n";
    assert_eq!(plan(ok), Ok(()));
    let c = EngineConfig::from_toml(&format!("{ok}{session}"), "t").expect("parses");
    let k = c.engine.kafka.expect("kafka");
    assert_eq!(
        (
            k.inbound_topic.as_str(),
            k.outbound_topic.as_str(),
            k.events_topic.as_str()
        ),
        ("FROM-FIX-ENGINE", "TO-FIX-ENGINE", "FIX-ENGINE-EVENTS")
    );
    for (engine, expected) in [
        ("[engine]\napp = \"kafka\"\n", "an [engine.kafka] section"),
        (
            "[engine]\napp = \"exec\"\n[engine.kafka]\nbrokers = \"b:9092\"\n",
            "app = \"kafka\" to run the bridge",
        ),
        (
            "[engine]\napp = \"kafka\"\n[engine.kafka]\nbrokers = \" \"\n",
            "kafka.brokers",
        ),
        (
            "[engine]\napp = \"kafka\"\n[engine.kafka]\nbrokers = \"b:9092\"\ninbound_topic = \"T\"\noutbound_topic = \"T\"\n",
            "a topic other than inbound_topic",
        ),
        (
            "[engine]\napp = \"kafka\"\n[engine.kafka]\nbrokers = \"b:9092\"\nevents_topic = \"bad topic\"\n",
            "kafka.events_topic",
        ),
    ] {
        let e = plan(engine).expect_err(engine);
        assert!(e.contains(expected), "{engine}: {e}");
    }
    let e = EngineConfig::from_toml(
        &format!("[engine]\napp = \"kafka\"\n[engine.kafka]\nbroker = \"b:9092\"\n{session}"),
        "t",
    )
    .expect_err("unknown key")
    .to_string();
    assert!(e.contains("broker"), "{e}");
}

#[test]
fn a_replication_port_reachable_from_other_hosts_needs_a_key() {
    let lease = "[engine.lease]\nurl = 'sqlite://x.db'\nowner = 'a'\n";
    let e = replication(&format!(
        "{lease}[engine.replication]\nlisten = '0.0.0.0:9901'\npeers = ['10.0.0.2:9901']"
    ))
    .expect_err("open to the network without a key")
    .to_string();
    assert!(
        e.contains("replication.listen") && e.contains("key_env") && e.contains("loopback"),
        "{e}"
    );
    replication(&format!(
        "{lease}[engine.replication]\nlisten = '0.0.0.0:9901'\npeers = ['10.0.0.2:9901']\nkey_env = 'FIX_REPLICATION_KEY'"
    ))
    .expect("with a key");
}

#[test]
fn the_replication_key_is_read_and_checked() {
    let dir = tempfile::tempdir().expect("tmp");
    let section = |extra: &str| -> ReplicationSection {
        toml::from_str(&format!("listen = '127.0.0.1:1'\n{extra}")).expect("section")
    };
    assert!(section("").key_bytes().expect("none").is_none());
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").expect("write");
    let e = section(&format!("key_file = '{}'", short.display()))
        .key_bytes()
        .expect_err("short")
        .to_string();
    assert!(e.contains("at least 16") && e.contains("has 3"), "{e}");
    let good = dir.path().join("good");
    std::fs::write(&good, "0123456789abcdef\n").expect("write");
    assert!(section(&format!("key_file = '{}'", good.display()))
        .key_bytes()
        .expect("read")
        .is_some());
    let e = section("key_env = 'FIX_TEST_SURELY_UNSET_KEY_VARIABLE'")
        .key_bytes()
        .expect_err("unset")
        .to_string();
    assert!(e.contains("not set"), "{e}");
    let e = section(&format!("key_env = 'X'\nkey_file = '{}'", good.display()))
        .key_bytes()
        .expect_err("both")
        .to_string();
    assert!(e.contains("one of key_env and key_file"), "{e}");
}

#[test]
fn a_slow_disk_steps_a_leader_down_only_where_a_standby_can_take_over() {
    let ttl = std::time::Duration::from_millis(1500);
    let engine = |extra: &str| -> EngineSection {
        toml::from_str(&format!("data_dir = 'd'\n{extra}")).expect("section")
    };
    let replicated = "[replication]\nlisten = '127.0.0.1:1'\n";
    assert_eq!(
        engine(replicated).sync_stall(ttl),
        Some(ttl),
        "default: the TTL"
    );
    assert_eq!(
        engine("").sync_stall(ttl),
        None,
        "alone: nobody else could lead"
    );
    assert_eq!(
        engine(&format!("sync_stall_ms = 0\n{replicated}")).sync_stall(ttl),
        None
    );
    assert_eq!(
        engine("sync_stall_ms = 700").sync_stall(ttl),
        Some(std::time::Duration::from_millis(700))
    );
}
