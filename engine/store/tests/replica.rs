//! The journal as a replication source and replica, on real files: a replica fed the
//! leader's stream is the same stream (positions, sequence numbers, resend reads), it
//! catches up from wherever it stopped, and a diverged tail is cut off and kept aside.

use fix_codec::UtcTimestamp;
use fix_session::{SessionId, SessionStore};
use fix_store::{Journal, JournalOptions, JournalStore};

fn id() -> SessionId {
    SessionId::new("FIX.4.4", "ME", "YOU")
}

fn opts(dir: &std::path::Path) -> JournalOptions {
    let mut o = JournalOptions::new(dir);
    o.segment_size = 4096;
    o
}

/// Copies everything durable in `from` beyond `to`'s end, in small chunks.
fn replicate(from: &Journal, to: &Journal) {
    from.sync().expect("leader durable");
    loop {
        let at = to.appended();
        let chunk = from.read_stream(at, 700).expect("read");
        if chunk.is_empty() {
            break;
        }
        to.append_replicated(at, &chunk).expect("append replicated");
    }
    to.sync().expect("replica durable");
}

fn outbound(store: &dyn SessionStore) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    store
        .load_outbound(1, u64::MAX, &mut |s, b| out.push((s, b.to_vec())))
        .expect("reads");
    out
}

#[test]
fn a_replica_is_the_same_stream_and_catches_up_after_a_restart() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let leader = Journal::open(opts(a.path())).expect("leader");
    leader.open_epoch(3).expect("epoch");
    let mut s = JournalStore::open(&leader, &id(), UtcTimestamp(5)).expect("session");
    for seq in 1..=60 {
        s.save_outbound(seq, format!("out-{seq:03}-{}", "x".repeat(80)).as_bytes())
            .expect("append");
    }
    s.save_inbound(1, b"in1").expect("append");
    {
        let replica = Journal::open_fenced(opts(b.path())).expect("replica");
        // A fenced replica never declares the session on its own.
        let r = JournalStore::open(&replica, &id(), UtcTimestamp(9)).expect("store");
        assert_eq!(
            replica.appended(),
            0,
            "opening a fenced store wrote nothing"
        );
        assert_eq!(r.next_sender_seq(), 1);
        replicate(&leader, &replica);
        assert_eq!(replica.appended(), leader.appended());
        replica.shutdown();
    }
    // More on the leader while the replica is down; it resumes from its own end.
    for seq in 61..=70 {
        s.save_outbound(seq, b"later").expect("append");
    }
    let replica = Journal::open_fenced(opts(b.path())).expect("replica again");
    let mut r = JournalStore::open(&replica, &id(), UtcTimestamp(9)).expect("store");
    replicate(&leader, &replica);
    assert_eq!(replica.appended(), leader.appended());
    assert_eq!(replica.epoch_history(), vec![(3, 0)]);
    r.refresh().expect("refresh");
    assert_eq!(r.next_sender_seq(), 71);
    assert_eq!(r.next_target_seq(), 2);
    assert_eq!(
        r.creation_time(),
        UtcTimestamp(5),
        "the leader's creation time"
    );
    assert_eq!(
        outbound(&r),
        outbound(&s),
        "the replica serves the same resends"
    );
    // A replica refuses records that do not continue its stream, and a leader refuses
    // replicated records altogether.
    let at = replica.appended();
    assert!(replica.append_replicated(at + 1, b"").is_err());
    assert!(leader.append_replicated(leader.appended(), b"").is_err());
}

#[test]
fn promotion_discards_a_half_replicated_batch_and_continues_the_sequence() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let leader = Journal::open(opts(a.path())).expect("leader");
    leader.open_epoch(1).expect("epoch");
    let mut s = JournalStore::open(&leader, &id(), UtcTimestamp(5)).expect("session");
    s.save_inbound(1, b"order").expect("append");
    s.begin_batch();
    s.save_outbound(1, b"exec report").expect("append");
    // The leader dies before the batch commits; the replica has the open batch.
    let replica = Journal::open_fenced(opts(b.path())).expect("replica");
    replicate(&leader, &replica);
    replica.open_epoch(2).expect("promote");
    let mut r = JournalStore::open(&replica, &id(), UtcTimestamp(9)).expect("store");
    assert_eq!(r.next_sender_seq(), 1, "the uncommitted reply is not there");
    let mut unprocessed = Vec::new();
    r.load_unprocessed_inbound(&mut |seq, _| unprocessed.push(seq))
        .expect("reads");
    assert_eq!(
        unprocessed,
        vec![1],
        "the order is handed to the application again"
    );
    r.save_outbound(1, b"exec report, new leader")
        .expect("append");
    assert_eq!(r.next_sender_seq(), 2);
    assert!(outbound(&r).iter().all(|(_, m)| m != b"exec report"));
}

#[test]
fn an_old_leaders_unreplicated_tail_is_cut_off_and_kept_aside() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let old = Journal::open(opts(a.path())).expect("old leader");
    old.open_epoch(1).expect("epoch");
    let mut s = JournalStore::open(&old, &id(), UtcTimestamp(5)).expect("session");
    for seq in 1..=5 {
        s.save_outbound(seq, b"replicated").expect("append");
    }
    let new = Journal::open_fenced(opts(b.path())).expect("standby");
    replicate(&old, &new);
    // The old leader writes more that never reaches the standby, which then promotes.
    for seq in 6..=8 {
        s.save_outbound(seq, b"never replicated").expect("append");
    }
    old.sync().expect("durable");
    new.open_epoch(2).expect("promote");
    let mut n = JournalStore::open(&new, &id(), UtcTimestamp(9)).expect("store");
    n.save_outbound(6, b"new leader").expect("append");
    new.sync().expect("durable");

    // The old leader comes back as a replica: the streams agree up to where epoch 2 began.
    old.fence();
    let agreed = new.agreed_position(&old.epoch_history(), old.appended());
    assert!(agreed < old.appended());
    let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (durable_told, written_told) = (std::sync::Arc::clone(&told), std::sync::Arc::clone(&told));
    old.on_durable(move |p| durable_told.lock().expect("lock").push(("durable", p)));
    old.on_written(move |p| written_told.lock().expect("lock").push(("written", p)));
    let cut = old.truncate(agreed).expect("truncate");
    assert!(cut > 0);
    assert_eq!(old.appended(), agreed);
    // What it acknowledges and streams comes down with the cut.
    assert_eq!((old.durable(), old.written()), (agreed, agreed));
    let told = told.lock().expect("lock").clone();
    assert!(
        told.contains(&("durable", agreed)) && told.contains(&("written", agreed)),
        "listeners hear the positions come down: {told:?}"
    );
    let aside = a.path().join("diverged");
    let saved: u64 = std::fs::read_dir(&aside)
        .expect("diverged dir")
        .flatten()
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert_eq!(saved, cut, "the cut bytes are kept, not deleted");
    replicate(&new, &old);
    assert_eq!(old.appended(), new.appended());
    s.refresh().expect("refresh");
    assert_eq!(s.next_sender_seq(), 7);
    assert_eq!(
        outbound(&s).last().map(|(q, m)| (*q, m.clone())),
        Some((6, b"new leader".to_vec()))
    );
    // And it survives a reopen as the same stream.
    old.shutdown();
    drop(s);
    let reopened = Journal::open_fenced(opts(a.path())).expect("reopen");
    assert_eq!(reopened.appended(), new.appended());
    assert_eq!(reopened.epoch_history(), new.epoch_history());
}

/// A replicated append racing a truncate: whichever wins, the replica's durable position
/// never lies past its end, and what it reopens to is what it said it held. (The truncate
/// once checked for appends in flight before taking the writer lock: a batch landing in
/// between was written, and reported durable, past the cut.)
#[test]
fn a_replicated_append_racing_a_truncate_never_leaves_bytes_past_the_cut() {
    let a = tempfile::tempdir().expect("tmp");
    let leader = Journal::open(opts(a.path())).expect("leader");
    leader.open_epoch(1).expect("epoch");
    let mut s = JournalStore::open(&leader, &id(), UtcTimestamp(5)).expect("session");
    for seq in 1..=40 {
        s.save_outbound(seq, format!("order-{seq:03}").as_bytes())
            .expect("append");
    }
    leader.sync().expect("durable");
    let full = leader.read_stream(0, 1 << 20).expect("read");
    let half = full.len() / 2;
    // Whole records only: the prefix up to the last record boundary before `half`.
    let first = leader.read_stream(0, half).expect("read first part");
    let split = first.len();
    let rest = full[split..].to_vec();
    let cut_to = leader.read_stream(0, split / 2).expect("read").len() as u64;
    assert!(0 < cut_to && cut_to < split as u64);
    for round in 0..200 {
        let b = tempfile::tempdir().expect("tmp");
        let replica = Journal::open_fenced(opts(b.path())).expect("replica");
        replica.append_replicated(0, &first).expect("first part");
        replica.sync().expect("durable");
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // Fails when the truncate came first: the replica no longer ends there.
                let _ = replica.append_replicated(split as u64, &rest);
            });
            replica.truncate(cut_to).expect("truncate");
        });
        replica.sync().expect("durable");
        let (appended, durable) = (replica.appended(), replica.durable());
        assert!(
            durable <= appended,
            "round {round}: durable {durable} past the end {appended}"
        );
        replica.shutdown();
        let reopened = Journal::open_fenced(opts(b.path())).expect("reopen");
        assert_eq!(
            reopened.appended(),
            appended,
            "round {round}: reopened to another end than the replica held"
        );
    }
}
