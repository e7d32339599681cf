//! Making room (pure): which cached assets to evict so that a wanted set
//! fits under `cache.max_bytes` and above the free-space floor.
//!
//! Eviction is least-recently-used first and never touches a pinned asset
//! (one of the active assignment, the pending one, or their fallbacks). If
//! evicting every unpinned asset would still not be enough, nothing is
//! evicted at all: a download that cannot finish must not cost the screen
//! content it could have kept.
//!
//! Sizes are the publisher's word (a signed entry can say `u64::MAX`), so
//! no sum of them may wrap or panic: [`total`] says when one overflows, and
//! the room arithmetic runs in `u128`, where sums of `u64` sizes cannot.

use phare_protocol::AssetId;

/// A cached asset that could be evicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub id: AssetId,
    pub size: u64,
    pub last_used: i64,
    pub pinned: bool,
}

/// The limits and what the disk looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_bytes: Option<u64>,
    pub min_free_bytes: u64,
    pub free_bytes: u64,
}

/// The wanted set cannot fit: by how many bytes, at best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub needed: u64,
    pub short_by: u64,
}

/// The sum of `sizes`, or `None` past `u64::MAX`.
pub fn total(sizes: impl IntoIterator<Item = u64>) -> Option<u64> {
    sizes.into_iter().try_fold(0, u64::checked_add)
}

/// `cached`: the assets on disk, besides the wanted ones. `wanted_bytes`:
/// the full size of the wanted assets; `to_write`: what is still to be
/// written for them (less their partial downloads). Returns the assets to
/// evict, oldest use first.
pub fn make_room(
    cached: &[Cached],
    wanted_bytes: u64,
    to_write: u64,
    budget: Budget,
) -> Result<Vec<AssetId>, Shortfall> {
    // How far over each limit the cache would be with nothing evicted.
    let kept: u128 = cached.iter().map(|c| u128::from(c.size)).sum();
    let over = |freed: u128| -> u128 {
        let over_max = budget.max_bytes.map_or(0, |max| {
            (kept - freed + u128::from(wanted_bytes)).saturating_sub(u128::from(max))
        });
        let over_floor = (u128::from(budget.min_free_bytes) + u128::from(to_write))
            .saturating_sub(u128::from(budget.free_bytes) + freed);
        over_max.max(over_floor)
    };
    let mut candidates: Vec<&Cached> = cached.iter().filter(|c| !c.pinned).collect();
    candidates.sort_by_key(|c| (c.last_used, c.id.clone()));
    let mut evict = Vec::new();
    let mut freed = 0;
    for candidate in candidates {
        if over(freed) == 0 {
            break;
        }
        freed += u128::from(candidate.size);
        evict.push(candidate.id.clone());
    }
    match over(freed) {
        0 => Ok(evict),
        short_by => Err(Shortfall {
            needed: wanted_bytes,
            short_by: u64::try_from(short_by).unwrap_or(u64::MAX),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(n: u8, size: u64, last_used: i64, pinned: bool) -> Cached {
        Cached {
            id: AssetId::from_digest(&[n; 32]),
            size,
            last_used,
            pinned,
        }
    }

    fn budget(max: u64) -> Budget {
        Budget {
            max_bytes: Some(max),
            min_free_bytes: 0,
            free_bytes: u64::MAX / 4,
        }
    }

    #[test]
    fn nothing_is_evicted_when_it_fits() {
        let on_disk = [cached(1, 40, 1, false)];
        assert_eq!(make_room(&on_disk, 60, 60, budget(100)), Ok(vec![]));
    }

    #[test]
    fn least_recently_used_goes_first_and_pinned_never() {
        let on_disk = [
            cached(1, 30, 5, false),
            cached(2, 30, 1, true),
            cached(3, 30, 2, false),
            cached(4, 30, 9, false),
        ];
        // 120 cached + 30 wanted, limit 100: 50 to free, two unpinned go,
        // the oldest first; the oldest of all is pinned and stays.
        assert_eq!(
            make_room(&on_disk, 30, 30, budget(100)),
            Ok(vec![on_disk[2].id.clone(), on_disk[0].id.clone()])
        );
    }

    #[test]
    fn what_cannot_fit_evicts_nothing() {
        let on_disk = [cached(1, 50, 1, true), cached(2, 10, 1, false)];
        assert_eq!(
            make_room(&on_disk, 60, 60, budget(100)),
            Err(Shortfall {
                needed: 60,
                short_by: 10
            })
        );
    }

    #[test]
    fn sizes_that_add_up_past_u64_max_do_not_fit_and_do_not_panic() {
        let huge = u64::MAX / 2 + 1;
        assert_eq!(total([huge, huge - 1]), Some(u64::MAX));
        assert_eq!(total([huge, huge]), None);
        let on_disk = [cached(1, huge, 1, false), cached(2, huge, 2, false)];
        let everything = Budget {
            max_bytes: Some(u64::MAX),
            min_free_bytes: u64::MAX,
            free_bytes: u64::MAX,
        };
        // Both cached files go to make room for the largest possible set.
        assert_eq!(
            make_room(&on_disk, u64::MAX, u64::MAX, everything),
            Ok(vec![on_disk[0].id.clone(), on_disk[1].id.clone()])
        );
        assert_eq!(
            make_room(&on_disk, u64::MAX, 0, budget(100)),
            Err(Shortfall {
                needed: u64::MAX,
                short_by: u64::MAX - 100
            })
        );
    }

    #[test]
    fn the_free_space_floor_counts_only_bytes_still_to_write() {
        let on_disk = [cached(1, 100, 1, false)];
        let tight = Budget {
            max_bytes: None,
            min_free_bytes: 1000,
            free_bytes: 1050,
        };
        // 80 of the 100 wanted bytes are already on disk as partial files.
        assert_eq!(make_room(&on_disk, 100, 20, tight), Ok(vec![]));
        assert_eq!(
            make_room(&on_disk, 100, 100, tight),
            Ok(vec![on_disk[0].id.clone()])
        );
        assert_eq!(
            make_room(&on_disk, 300, 300, tight).unwrap_err().short_by,
            150
        );
    }
}
