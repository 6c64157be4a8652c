use super::*;
use proptest::prelude::*;

const WAIT: Duration = Duration::from_millis(300);

/// The write `poll` asks for, if any (a read-back is a test failure here).
fn write(s: &mut InSyncSet, now: Instant, durable: u64) -> Option<Record> {
    match s.poll(now, durable)? {
        Step::Record(r) => Some(r),
        Step::ReadBack { .. } => panic!("unexpected read-back"),
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A leader `a` whose takeover record landed.
fn leading(policy: OnStandbyLoss) -> (InSyncSet, Instant) {
    let t = Instant::now();
    let mut s = InSyncSet::new("a", policy, WAIT, true);
    s.lead(7);
    assert_eq!(
        s.committed(),
        0,
        "nothing is durable before the takeover record"
    );
    let r = write(&mut s, t, 0).expect("takeover record");
    assert_eq!(
        r,
        Record {
            epoch: 7,
            expected: None,
            new: Stored {
                members: set(&["a"]),
                version: 7 << 24
            }
        }
    );
    assert_eq!(write(&mut s, t, 0), None, "one write at a time");
    s.written(&r, Written::Recorded, t);
    (s, t)
}

/// `b` connects, streams, and is recorded; returns the time after.
fn join_b(s: &mut InSyncSet, t: Instant, durable: u64) -> Instant {
    s.connected("b", true, 0);
    s.acked("b", durable, true);
    let r = write(s, t, durable).expect("b joins");
    assert_eq!(r.new.members, set(&["a", "b"]));
    s.written(&r, Written::Recorded, t);
    t
}

#[test]
fn alone_after_takeover_shrink_commits_locally_and_halt_commits_nothing() {
    let (s, _) = leading(OnStandbyLoss::Shrink);
    assert_eq!(s.committed(), u64::MAX);
    let (s, _) = leading(OnStandbyLoss::Halt);
    assert_eq!(s.committed(), 0);
}

#[test]
fn a_joined_standby_is_required_for_every_later_record() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 100);
    let t = join_b(&mut s, t, 100);
    s.durable(t, 200);
    assert_eq!(s.committed(), 100, "200 waits for b");
    s.acked("b", 200, true);
    assert_eq!(s.committed(), 200);
}

#[test]
fn a_joiner_is_recorded_only_once_it_holds_what_was_answered_alone() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 1000);
    s.connected("b", true, 0);
    s.acked("b", 900, true);
    assert_eq!(
        write(&mut s, t, 1000),
        None,
        "not recorded while 900..1000 is missing"
    );
    assert_eq!(s.committed(), 900, "but required from now on");
    assert!(
        !s.recorded_with_others(),
        "a joiner holds records but cannot be elected: they need the leader's disk"
    );
    s.acked("b", 1000, true);
    let r = write(&mut s, t, 1000).expect("recorded now");
    assert_eq!(r.new.members, set(&["a", "b"]));
    assert!(!s.recorded_with_others(), "not before the write lands");
    s.written(&r, Written::Recorded, t);
    assert!(s.recorded_with_others());
}

#[test]
fn a_stalled_member_is_dropped_only_by_a_recorded_write_and_stays_required_until_then() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    let t = join_b(&mut s, t, 0);
    s.durable(t, 50);
    assert_eq!(
        write(&mut s, t + WAIT / 2, 50),
        None,
        "not yet waited long enough"
    );
    let later = t + WAIT;
    let r = write(&mut s, later, 50).expect("shrink");
    assert_eq!(r.new.members, set(&["a"]));
    assert_eq!(
        s.committed(),
        0,
        "b is required until the smaller set is recorded"
    );
    s.written(&r, Written::Refused, later);
    assert_eq!(s.committed(), 0, "a refused write changes nothing");
    assert_eq!(s.view(later).shrinks, 0);
}

#[test]
fn after_the_shrink_lands_the_leader_goes_on_alone_and_the_standby_rejoins() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    let t = join_b(&mut s, t, 0);
    s.durable(t, 50);
    let later = t + WAIT;
    let r = write(&mut s, later, 50).expect("shrink");
    s.written(&r, Written::Recorded, later);
    assert_eq!(s.committed(), u64::MAX);
    assert_eq!(s.view(later).recorded, Some(vec!["a".to_string()]));
    s.acked("b", 50, true);
    let r = write(&mut s, later, 50).expect("rejoin");
    assert_eq!(r.new.members, set(&["a", "b"]));
    s.written(&r, Written::Recorded, later);
    let v = s.view(later);
    assert_eq!((v.shrinks, v.expands), (1, 2), "b joined twice, left once");
}

#[test]
fn halt_never_drops_a_member() {
    let (mut s, t) = leading(OnStandbyLoss::Halt);
    let t = join_b(&mut s, t, 0);
    s.durable(t, 50);
    let later = t + WAIT * 10;
    assert_eq!(write(&mut s, later, 50), None);
    assert_eq!(s.committed(), 0);
    assert!(s.view(later).halted);
}

#[test]
fn a_standby_messages_must_not_wait_for_never_joins() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 100);
    s.connected("remote", false, 0);
    s.acked("remote", 100, true);
    assert_eq!(write(&mut s, t, 100), None);
    assert_eq!(s.committed(), u64::MAX);
}

#[test]
fn a_write_that_may_still_land_keeps_its_members_required_until_it_never_can() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    let takeover = Stored {
        members: set(&["a"]),
        version: 7 << 24,
    };
    s.durable(t, 10);
    s.connected("b", true, 0);
    s.acked("b", 10, true);
    let grow = write(&mut s, t, 10).expect("b joins");
    assert_eq!(grow.expected.as_ref(), Some(&takeover));
    s.written(&grow, Written::Unknown, t);
    s.durable(t, 20);
    let later = t + WAIT;
    match s.poll(later, 20) {
        Some(Step::ReadBack { epoch: 7 }) => {}
        other => panic!("expected a read-back, got {other:?}"),
    }
    s.read_back(7, Ok(Some(Some(takeover.clone()))), later);
    assert_eq!(s.committed(), 10, "b may yet be recorded: still required");
    let bump = write(&mut s, later, 20).expect("record again");
    assert_eq!(
        (bump.expected.as_ref(), &bump.new.members),
        (Some(&takeover), &set(&["a"]))
    );
    assert!(bump.new.version > grow.new.version);
    assert_eq!(s.committed(), 10, "and while the new record is written");
    s.written(&bump, Written::Recorded, later);
    // The late write expects the takeover record, which is gone for good; b, a joiner
    // again, is recorded only by a write that expects the new one.
    s.acked("b", 20, true);
    let again = write(&mut s, later, 20).expect("b joins again");
    assert_eq!(again.expected.map(|e| e.version), Some(bump.new.version));
}

#[test]
fn a_stalled_joiner_is_dropped_without_a_write() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 100);
    s.connected("b", true, 0);
    s.acked("b", 90, true);
    assert_eq!(write(&mut s, t, 100), None);
    assert_eq!(s.committed(), 90);
    assert_eq!(write(&mut s, t + WAIT, 100), None, "nothing to record");
    assert_eq!(s.committed(), u64::MAX, "b no longer holds records back");
}

#[test]
fn a_new_term_starts_over_and_without_enforcement_clears_the_record_once() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    join_b(&mut s, t, 0);
    s.lead(8);
    assert_eq!(s.committed(), 0);
    assert_eq!(
        write(&mut s, t, 0).map(|r| r.new.members),
        Some(set(&["a"]))
    );

    let mut s = InSyncSet::new("a", OnStandbyLoss::Shrink, WAIT, false);
    s.lead(3);
    assert_eq!(s.committed(), u64::MAX);
    let r = write(&mut s, t, 0).expect("clear");
    assert!(r.new.members.is_empty());
    s.written(&r, Written::Recorded, t);
    assert_eq!(write(&mut s, t, 0), None);
}

#[derive(Debug, Clone)]
enum Op {
    Write(u64),
    Ack(usize, u64),
    Connect(usize),
    Disconnect(usize),
    Elapse(u64),
    Poll,
    /// The pending write's answer: 0 recorded (if the stored set is the one expected),
    /// 1 refused, 2 unknown (it may still land later).
    Land(u8),
    /// A write whose answer was unknown lands now (if the stored set is still the one
    /// it expects).
    LateLand,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..200u64).prop_map(Op::Write),
        (0..3usize, 0..400u64).prop_map(|(i, p)| Op::Ack(i, p)),
        (0..3usize).prop_map(Op::Connect),
        (0..3usize).prop_map(Op::Disconnect),
        (0..400u64).prop_map(Op::Elapse),
        Just(Op::Poll),
        (0..3u8).prop_map(Op::Land),
        Just(Op::LateLand),
    ]
}

/// Whether a conditional write expecting `expected` applies to `store`.
fn applies(expected: &Option<Stored>, store: &Option<Stored>) -> bool {
    match expected {
        None => true,
        Some(e) if e.members.is_empty() => store.is_none(),
        Some(e) => store.as_ref() == Some(e),
    }
}

fn stored(record: &Stored) -> Option<Stored> {
    (!record.members.is_empty()).then(|| record.clone())
}

proptest! {
    /// Whatever the interleaving, with writes refused, unanswered and landing late:
    /// every record ever acted on (durable here and committed) is held by every member
    /// of the set recorded in the store.
    #[test]
    fn every_acknowledged_record_is_on_every_recorded_member(
        ops in proptest::collection::vec(op(), 1..250),
        halt in any::<bool>(),
    ) {
        let names = ["b", "c", "d"];
        let policy = if halt { OnStandbyLoss::Halt } else { OnStandbyLoss::Shrink };
        let mut s = InSyncSet::new("a", policy, WAIT, true);
        s.lead(1);
        let mut now = Instant::now();
        let mut durable = 0u64;
        let mut acked = [0u64; 3];
        let mut connected = [0u32; 3];
        let mut store: Option<Stored> = None;
        let mut pending: Option<Record> = None;
        let mut late: Vec<Record> = Vec::new();
        let mut answered = 0u64;
        for op in ops {
            match op {
                Op::Write(n) => {
                    durable += n;
                    s.durable(now, durable);
                }
                Op::Ack(i, p) => {
                    if connected[i] > 0 {
                        let p = acked[i].max(p.min(durable));
                        acked[i] = p;
                        s.acked(names[i], p, p == durable);
                    }
                }
                Op::Connect(i) => {
                    connected[i] += 1;
                    s.connected(names[i], i != 2, acked[i]);
                }
                Op::Disconnect(i) => {
                    if connected[i] > 0 {
                        connected[i] -= 1;
                        s.disconnected(names[i]);
                    }
                }
                Op::Elapse(ms) => now += Duration::from_millis(ms),
                Op::Poll => match s.poll(now, durable) {
                    Some(Step::Record(r)) => pending = Some(r),
                    Some(Step::ReadBack { epoch }) => {
                        s.read_back(epoch, Ok(Some(store.clone())), now);
                    }
                    None => {}
                },
                Op::Land(answer) => {
                    if let Some(r) = pending.take() {
                        let outcome = match answer {
                            0 if applies(&r.expected, &store) => {
                                store = stored(&r.new);
                                Written::Recorded
                            }
                            0 | 1 => Written::Refused,
                            _ => {
                                late.push(r.clone());
                                Written::Unknown
                            }
                        };
                        s.written(&r, outcome, now);
                    }
                }
                Op::LateLand => {
                    if let Some(r) = late.pop() {
                        if applies(&r.expected, &store) {
                            store = stored(&r.new);
                        }
                    }
                }
            }
            answered = answered.max(s.committed().min(durable));
            if let Some(record) = &store {
                for (i, n) in names.iter().enumerate() {
                    if record.members.contains(*n) {
                        prop_assert!(
                            acked[i] >= answered,
                            "{n} recorded in sync with {} but {answered} was answered",
                            acked[i]
                        );
                    }
                }
            } else {
                prop_assert_eq!(answered, 0, "answered before the takeover record");
            }
        }
    }
}

/// Found by the simulation (`fix-sim`; first as seed 70 with 4 instances): a member whose disk
/// stalled was dropped for not acknowledging and reconnected with a Hello from its
/// journal's end; that end counted as acknowledged, so the leader answered records the
/// member had not synced.
#[test]
fn a_reconnecting_member_counts_for_what_it_acknowledged_not_for_where_its_journal_ends() {
    let (mut s, t) = leading(OnStandbyLoss::Shrink);
    s.durable(t, 100);
    join_b(&mut s, t, 100);
    assert_eq!(s.committed(), 100);
    s.durable(t, 200);
    s.disconnected("b");
    // b appended up to 200 but synced nothing more: its Hello says 200.
    s.connected("b", true, 200);
    assert_eq!(s.committed(), 100, "b has acknowledged only 100");
    s.acked("b", 200, true);
    assert_eq!(s.committed(), 200);
    // A rebuilt disk holds less than was acknowledged: it counts for what it holds.
    s.disconnected("b");
    s.connected("b", true, 50);
    assert_eq!(s.committed(), 50);
}
