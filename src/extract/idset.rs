//! A compact set of lead IDs. Bitrix24 numbers leads from 1 upwards, so a bitmap indexed by
//! ID holds a whole portal's IDs in `max ID / 8` bytes (a portal whose IDs reach 1,000,000
//! takes 122 KiB) instead of 8–40 bytes per lead: the deletion check's listing then costs
//! the same memory whether the portal holds 100,000 leads or 1,000,000.

use std::collections::HashSet;

/// IDs above this go to an ordinary hash set (a portal with such IDs is unusual; the
/// bitmap stays at most 8 MiB).
const BITMAP_LIMIT: i64 = 1 << 26;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet {
    bits: Vec<u64>,
    large: HashSet<i64>,
    len: usize,
}

impl IdSet {
    pub fn insert(&mut self, id: i64) {
        if !(0..BITMAP_LIMIT).contains(&id) {
            if self.large.insert(id) {
                self.len += 1;
            }
            return;
        }
        let (word, bit) = ((id / 64) as usize, id % 64);
        if word >= self.bits.len() {
            // Grow geometrically: IDs arrive in ascending order.
            self.bits.resize((word + 1).max(self.bits.len() * 2), 0);
        }
        if self.bits[word] & (1 << bit) == 0 {
            self.bits[word] |= 1 << bit;
            self.len += 1;
        }
    }

    pub fn contains(&self, id: i64) -> bool {
        if !(0..BITMAP_LIMIT).contains(&id) {
            return self.large.contains(&id);
        }
        let (word, bit) = ((id / 64) as usize, id % 64);
        self.bits.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromIterator<i64> for IdSet {
    fn from_iter<T: IntoIterator<Item = i64>>(iter: T) -> Self {
        let mut set = IdSet::default();
        for id in iter {
            set.insert(id);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_small_and_large_ids_once() {
        let set: IdSet = [1, 64, 65, 3, 3, 1_000_000, BITMAP_LIMIT + 5, -2]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 7);
        for id in [1, 3, 64, 65, 1_000_000, BITMAP_LIMIT + 5, -2] {
            assert!(set.contains(id), "{id}");
        }
        for id in [0, 2, 63, 66, 999_999, BITMAP_LIMIT + 4, i64::MAX] {
            assert!(!set.contains(id), "{id}");
        }
    }

    #[test]
    fn a_million_ids_take_about_a_bit_each() {
        let set: IdSet = (1..=1_000_000).collect();
        assert_eq!(set.len(), 1_000_000);
        assert!(
            set.bits.len() * 8 <= 2 * 1_000_000 / 8 + 64,
            "{} bytes",
            set.bits.len() * 8
        );
    }
}
