//! Control connection slots. A client holds a slot for as long as it is connected; a full table
//! makes room by evicting the client that has waited longest without sending a request, so
//! a pile of silent connections can never lock `pairtunctl status` out. Clients being answered
//! or following a stream (`status --watch`, `logs -f`) are never evicted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The table of connected clients.
#[derive(Debug)]
pub(super) struct Slots {
    capacity: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    clients: HashMap<u64, Client>,
}

#[derive(Debug)]
struct Client {
    /// Since when it has been waiting for a request; `None` while it is being served.
    idle_since: Option<Instant>,
    evict: CancellationToken,
}

/// Why a client got no slot.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Full;

impl Slots {
    /// A table for `capacity` clients.
    pub(super) fn new(capacity: usize) -> Arc<Slots> {
        Arc::new(Slots {
            capacity,
            table: Mutex::new(Table::default()),
        })
    }

    /// A slot for a new client, idle from now; when the table is full the longest-idle client
    /// is evicted for it. [`Full`] when every client is busy.
    pub(super) fn claim(self: &Arc<Self>) -> Result<Slot, Full> {
        let mut table = self.lock();
        if table.clients.len() >= self.capacity {
            let oldest = table
                .clients
                .iter()
                .filter_map(|(id, c)| c.idle_since.map(|since| (since, *id)))
                .min()
                .map(|(_, id)| id)
                .ok_or(Full)?;
            if let Some(evicted) = table.clients.remove(&oldest) {
                evicted.evict.cancel();
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let evicted = CancellationToken::new();
        let client = Client {
            idle_since: Some(Instant::now()),
            evict: evicted.clone(),
        };
        table.clients.insert(id, client);
        Ok(Slot {
            slots: self.clone(),
            id,
            evicted,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table stays consistent whatever panicked while holding it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One client's place in the table, freed on drop.
#[derive(Debug)]
pub(super) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    /// Cancelled when the client is evicted.
    pub(super) evicted: CancellationToken,
}

impl Slot {
    /// The client waits for its next request (evictable from now).
    pub(super) fn idle(&self) {
        self.set_idle(Some(Instant::now()));
    }

    /// The client is being served (not evictable).
    pub(super) fn busy(&self) {
        self.set_idle(None);
    }

    fn set_idle(&self, since: Option<Instant>) {
        if let Some(client) = self.slots.lock().clients.get_mut(&self.id) {
            client.idle_since = since;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().clients.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_longest_idle_client_never_a_busy_one() {
        let slots = Slots::new(3);
        let first = slots.claim().expect("first");
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        let second = slots.claim().expect("second");
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        let third = slots.claim().expect("third");
        first.busy();

        let fourth = slots.claim().expect("room made");
        assert!(second.evicted.is_cancelled(), "the longest idle goes");
        assert!(!first.evicted.is_cancelled() && !third.evicted.is_cancelled());

        third.busy();
        fourth.busy();
        assert_eq!(slots.claim().map(|_| ()), Err(Full), "all busy");

        drop(first);
        let fifth = slots.claim().expect("a freed slot");
        assert!(!fifth.evicted.is_cancelled());
    }
}
