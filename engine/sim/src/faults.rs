//! The faults the simulation injects at random: crashes and restarts, pauses,
//! partitions, instances cut off from the lease store or slowed down on it, stalled
//! disks.

use crate::node::Node;
use crate::world::{Event, World, TICK, TTL};

impl World {
    pub(crate) fn inject_fault(&mut self) {
        let n = self.nodes.len();
        let i = self.rng.usize(0..n);
        let name = self.nodes[i].name.clone();
        match self.rng.u8(0..100) {
            0..=24 => {
                if self.nodes[i].up {
                    self.note(format!("fault: {name} crashes"));
                    self.crash(i);
                    let back = self.rng.u64(200..3000);
                    self.at(back, Event::Restart(i));
                }
            }
            25..=49 => {
                let pause = self.rng.u64(100..4000);
                self.note(format!("fault: {name} pauses for {pause} ms"));
                self.nodes[i].paused_until = self.nodes[i].paused_until.max(self.now + pause);
                self.at(pause, Event::Resume(i));
            }
            50..=69 if n > 1 => {
                let mut j = self.rng.usize(0..n - 1);
                if j >= i {
                    j += 1;
                }
                let (a, b) = (i.min(j), i.max(j));
                let heal = self.rng.u64(200..3000);
                self.note(format!(
                    "fault: partition {}|{} for {heal} ms",
                    self.nodes[a].name, self.nodes[b].name
                ));
                self.partitions.insert((a, b));
                for c in self.conns.values_mut() {
                    if (c.server, c.client) == (a, b) || (c.server, c.client) == (b, a) {
                        c.broken = true;
                    }
                }
                self.at(heal, Event::Heal(a, b));
            }
            70..=77 => {
                let heal = self.rng.u64(500..4000);
                self.note(format!(
                    "fault: {name}'s lease-store calls take up to {} ms for {heal} ms",
                    2 * TTL
                ));
                self.slow_store.insert(i, self.now + heal);
            }
            78..=85 => {
                let heal = self.rng.u64(200..3000);
                self.note(format!(
                    "fault: {name} cut off from the lease store for {heal} ms"
                ));
                self.cut_from_store.insert(i);
                self.at(heal, Event::StoreHeal(i));
            }
            _ => {
                let heal = self.rng.u64(100..2500);
                self.note(format!("fault: {name}'s disk stalls for {heal} ms"));
                self.nodes[i].disk_stalled = true;
                self.at(heal, Event::DiskHeal(i));
            }
        }
    }

    /// `node` stops at once: its connections close, what its disk had not synced is lost.
    pub(crate) fn crash(&mut self, i: usize) {
        let conns: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.open && (c.server == i || c.client == i))
            .map(|(id, _)| *id)
            .collect();
        for c in conns {
            self.close(c, i);
        }
        let node = &mut self.nodes[i];
        node.up = false;
        node.incarnation += 1;
        node.journal.crash();
        node.leading = None;
    }

    pub(crate) fn restart(&mut self, i: usize) {
        let n = self.nodes.len();
        let policy = self.opts.on_standby_loss;
        let old = std::mem::replace(&mut self.nodes[i], Node::new(i, n, policy));
        let node = &mut self.nodes[i];
        node.journal = old.journal;
        node.incarnation = old.incarnation + 1;
        node.paused_until = old.paused_until;
        node.disk_stalled = old.disk_stalled;
        node.clock_rate = old.clock_rate;
        self.note(format!(
            "{} restarts with its journal at {}",
            self.nodes[i].name,
            self.nodes[i].journal.end()
        ));
        let incarnation = self.nodes[i].incarnation;
        self.at(TICK, Event::Tick(i, incarnation));
    }
}
