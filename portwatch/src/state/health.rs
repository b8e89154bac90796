//! What `watch --stats` remembers of each listener between two of its stats records: the
//! drops it had and how its CLOSE_WAIT count has moved. An entry goes as soon as its listener
//! is no longer listed, so memory follows the live listeners.
use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::health::{Health, Rising};

#[derive(Clone, Copy, Debug)]
struct Trend {
    /// Its network namespace: one that could not be listed keeps its listeners' trends.
    netns: u32,
    drops: u64,
    close_wait: u32,
    /// Checks at which CLOSE_WAIT rose since it last fell, and the count before the first.
    rises: u32,
    low: u32,
}

#[derive(Default)]
pub struct Trends {
    by_inode: FxHashMap<u64, Trend>,
}

impl Trends {
    /// Records `health` of listener `inode`, setting its `new_drops`; a listener seen for the
    /// first time counts its drops from zero when `made_while_watched` (portwatch saw its
    /// listen), else from now. Returns its CLOSE_WAIT run, when rising.
    pub fn update(
        &mut self,
        inode: u64,
        netns: u32,
        health: &mut Health,
        made_while_watched: bool,
    ) -> Option<Rising> {
        let drops = health.drops.unwrap_or(0);
        let close_wait = health.connections.map_or(0, |c| c.close_wait);
        let start = if made_while_watched { 0 } else { drops };
        let t = self.by_inode.entry(inode).or_insert(Trend {
            netns,
            drops: start,
            close_wait,
            rises: 0,
            low: close_wait,
        });
        health.new_drops = health.drops.map(|d| d.saturating_sub(t.drops));
        t.drops = drops;
        if close_wait > t.close_wait {
            t.rises += 1;
        } else if close_wait < t.close_wait {
            t.rises = 0;
            t.low = close_wait;
        }
        if t.rises == 0 {
            t.low = close_wait;
        }
        let rose = close_wait > t.close_wait;
        t.close_wait = close_wait;
        (rose && t.rises > 0).then_some(Rising {
            rises: t.rises,
            from: t.low,
        })
    }

    /// Forgets the listeners not in `listed`, except those of the namespaces that could not
    /// be listed this time (`unlisted`): their drops would otherwise count again as new.
    pub fn retain(&mut self, listed: &FxHashSet<u64>, unlisted: &FxHashSet<u32>) {
        self.by_inode
            .retain(|inode, t| listed.contains(inode) || unlisted.contains(&t.netns));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_inode.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::health::Connections;

    fn health(drops: u64, close_wait: u32) -> Health {
        Health {
            drops: Some(drops),
            connections: Some(Connections {
                close_wait,
                ..Connections::default()
            }),
            ..Health::default()
        }
    }

    #[test]
    fn drops_are_counted_between_checks_and_close_wait_runs_break_on_a_fall() {
        let mut t = Trends::default();
        let mut step = |drops, cw, new| {
            let mut h = health(drops, cw);
            let rising = t.update(7, 1, &mut h, false);
            assert_eq!(h.new_drops, Some(new));
            rising
        };
        // First seen with 5 drops already: none new.
        assert_eq!(step(5, 1, 0), None);
        assert_eq!(step(9, 2, 4), Some(Rising { rises: 1, from: 1 }));
        // An equal count neither extends nor breaks the run.
        assert_eq!(step(9, 2, 0), None);
        assert_eq!(step(9, 3, 0), Some(Rising { rises: 2, from: 1 }));
        assert_eq!(step(9, 4, 0), Some(Rising { rises: 3, from: 1 }));
        // A fall ends it; the next rise starts again from the low.
        assert_eq!(step(9, 1, 0), None);
        assert_eq!(step(9, 2, 0), Some(Rising { rises: 1, from: 1 }));
        // Made while watched: every drop is new.
        let mut h = health(3, 0);
        assert_eq!(t.update(8, 1, &mut h, true), None);
        assert_eq!(h.new_drops, Some(3));
        // Inode 7 gone from namespace 1's listing: forgotten, unless 1 could not be listed.
        let none = FxHashSet::default();
        t.retain(&[8].into_iter().collect(), &[1].into_iter().collect());
        assert_eq!(t.len(), 2);
        t.retain(&[8].into_iter().collect(), &none);
        assert_eq!(t.len(), 1);
        // Listed again later, its drops are not new.
        t.retain(&FxHashSet::default(), &none);
        let mut h = health(3, 0);
        t.update(8, 1, &mut h, false);
        assert_eq!(h.new_drops, Some(0));
    }
}
