//! The odd/even split of workers over zones, zone failover, and moving workers back one at a
//! time when a zone recovers.

/// Splits `total` workers over `zones` zones: worker i goes to zone i mod zones, so zone j
/// gets `total / zones` plus one when `j < total % zones`. Returns an empty vector when there
/// are no zones.
pub fn odd_even(total: u32, zones: usize) -> Vec<u32> {
    let Ok(zone_count) = u32::try_from(zones) else {
        return vec![0; zones];
    };
    if zone_count == 0 {
        return Vec::new();
    }

    let base = total / zone_count;
    let remainder = total % zone_count;
    (0..zone_count)
        .map(|zone| base + u32::from(zone < remainder))
        .collect()
}

/// Splits `total` workers over the zones marked available, in zone order, giving 0 to the
/// others. When no zone is available, the full odd/even split is returned, because moving
/// workers gains nothing.
pub fn failover_split(total: u32, available: &[bool]) -> Vec<u32> {
    let available_count = available.iter().filter(|up| **up).count();
    if available_count == 0 {
        return odd_even(total, available.len());
    }

    let mut shares = odd_even(total, available_count).into_iter();
    available
        .iter()
        .map(|up| if *up { shares.next().unwrap_or(0) } else { 0 })
        .collect()
}

/// Computes the per-zone counts to ask Nomad for in this reconcile, moving from `current`
/// (Nomad's desired counts) toward `target` without letting capacity drop below the target
/// total while workers move between available zones.
///
/// - A pure scale-up or scale-down goes straight to `target`.
/// - A zone that is unavailable drops to its target at once (its workers cannot run), and
///   its share is added to the zones that gained, so failover is immediate.
/// - Moving workers between available zones (a recovered zone taking its share back) goes
///   one worker at a time. First a zone below target gets one more worker. Once every zone
///   at or below target runs all its workers, the zone furthest above target gets one fewer.
///
/// `running` is the per-zone count of running allocations. All slices have one entry per
/// zone.
pub fn step_toward(
    target: &[u32],
    current: &[u32],
    running: &[u32],
    available: &[bool],
) -> Vec<u32> {
    let zone_count = target.len();
    let target_total: u32 = target.iter().sum();
    let mut next = current.to_vec();

    // Zones that cannot run anything go to their target at once, and the zones that gain
    // take up the lost share immediately.
    for zone in 0..zone_count {
        if !available[zone] && next[zone] > target[zone] {
            next[zone] = target[zone];
        }
    }
    while next.iter().sum::<u32>() < target_total {
        let Some(zone) = largest_gap(target, &next, |t, n| t > n) else {
            break;
        };
        next[zone] += 1;
    }

    let has_deficit = (0..zone_count).any(|zone| next[zone] < target[zone]);
    let has_surplus = (0..zone_count).any(|zone| next[zone] > target[zone]);
    if !has_deficit || !has_surplus {
        return target.to_vec();
    }

    // Workers move between available zones: keep at most one extra worker in flight.
    let mut total: u32 = next.iter().sum();
    while total > target_total + 1 {
        let Some(zone) = largest_gap(target, &next, |t, n| n > t) else {
            break;
        };
        next[zone] -= 1;
        total -= 1;
    }

    if total == target_total {
        if let Some(zone) = largest_gap(target, &next, |t, n| t > n) {
            next[zone] += 1;
        }
        return next;
    }

    let additions_running =
        (0..zone_count).all(|zone| next[zone] > target[zone] || running[zone] >= next[zone]);
    if additions_running && let Some(zone) = largest_gap(target, &next, |t, n| n > t) {
        next[zone] -= 1;
    }
    next
}

/// Returns the zone where `selects(target, next)` is true with the largest difference, the
/// lowest index on ties.
fn largest_gap(target: &[u32], next: &[u32], selects: impl Fn(u32, u32) -> bool) -> Option<usize> {
    (0..target.len())
        .filter(|&zone| selects(target[zone], next[zone]))
        .max_by_key(|&zone| (target[zone].abs_diff(next[zone]), std::cmp::Reverse(zone)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_two_zones_one_to_nine() {
        for total in 1..=9u32 {
            let split = odd_even(total, 2);
            assert_eq!(split[0], total.div_ceil(2), "zone 0 of {total}");
            assert_eq!(split[1], total / 2, "zone 1 of {total}");
        }
    }

    #[test]
    fn odd_even_three_zones_one_to_nine() {
        let expected: [[u32; 3]; 9] = [
            [1, 0, 0],
            [1, 1, 0],
            [1, 1, 1],
            [2, 1, 1],
            [2, 2, 1],
            [2, 2, 2],
            [3, 2, 2],
            [3, 3, 2],
            [3, 3, 3],
        ];
        for (index, row) in expected.iter().enumerate() {
            let total = u32::try_from(index + 1).expect("index below 9");
            assert_eq!(odd_even(total, 3), row.to_vec(), "split of {total}");
        }
    }

    #[test]
    fn odd_even_matches_modulo_rule() {
        for zones in 1..=5usize {
            for total in 0..=20u32 {
                let mut expected = vec![0u32; zones];
                for worker in 0..total as usize {
                    expected[worker % zones] += 1;
                }
                assert_eq!(odd_even(total, zones), expected, "{total} over {zones}");
            }
        }
    }

    #[test]
    fn odd_even_without_zones_is_empty() {
        assert!(odd_even(5, 0).is_empty());
    }

    #[test]
    fn failover_moves_share_to_others() {
        assert_eq!(failover_split(5, &[true, false]), vec![5, 0]);
        assert_eq!(failover_split(5, &[false, true]), vec![0, 5]);
        assert_eq!(failover_split(7, &[true, false, true]), vec![4, 0, 3]);
    }

    #[test]
    fn failover_without_available_zone_keeps_full_split() {
        assert_eq!(failover_split(5, &[false, false]), vec![3, 2]);
    }

    #[test]
    fn step_scale_goes_straight_to_target() {
        assert_eq!(
            step_toward(&[3, 3], &[1, 1], &[1, 1], &[true, true]),
            vec![3, 3]
        );
        assert_eq!(
            step_toward(&[1, 1], &[3, 3], &[3, 3], &[true, true]),
            vec![1, 1]
        );
    }

    #[test]
    fn step_failover_is_immediate() {
        // Zone b went down: its 2 workers move to zone a in one step.
        let next = step_toward(&[4, 0], &[2, 2], &[2, 0], &[true, false]);
        assert_eq!(next, vec![4, 0]);
    }

    #[test]
    fn step_move_back_one_at_a_time() {
        let available = [true, true];
        let target = [2, 2];

        // Zone b recovered while zone a runs all 4: add one in b first.
        let first = step_toward(&target, &[4, 0], &[4, 0], &available);
        assert_eq!(first, vec![4, 1]);

        // The new worker in b is not running yet: hold.
        let waiting = step_toward(&target, &first, &[4, 0], &available);
        assert_eq!(waiting, vec![4, 1]);

        // It runs: remove one from a.
        let second = step_toward(&target, &first, &[4, 1], &available);
        assert_eq!(second, vec![3, 1]);

        // Next round: add in b, then remove from a.
        let third = step_toward(&target, &second, &[3, 1], &available);
        assert_eq!(third, vec![3, 2]);
        let fourth = step_toward(&target, &third, &[3, 2], &available);
        assert_eq!(fourth, vec![2, 2]);
    }

    #[test]
    fn step_move_back_never_drops_below_desired() {
        let available = [true, true, true];
        let target = [3, 3, 3];
        let mut current = vec![5, 0, 4];
        for _ in 0..20 {
            let running = current.clone();
            let next = step_toward(&target, &current, &running, &available);
            assert!(next.iter().sum::<u32>() >= 9, "{next:?} dropped below 9");
            assert!(
                next.iter().sum::<u32>() <= 10,
                "{next:?} has more than one extra"
            );
            current = next;
        }
        assert_eq!(current, vec![3, 3, 3]);
    }
}
