//! Deadline-aware previews: while the user is editing, a preview that misses its frame budget
//! makes the next ones render from a coarser pyramid level (up to two levels coarser); once the
//! edits pause, the preview renders at the level the view needs again (it refines).

use std::time::Duration;

/// Most levels a preview is made coarser than the view needs.
pub const MAX_COARSENING: usize = 2;

/// How long without edits before previews refine to the needed level again.
pub const QUIET: Duration = Duration::from_millis(300);

/// The coarsening for the next preview after a frame that took `latency`, given the current
/// `coarsening`, the budget (`budget_ms`, 0 = off) and whether the user is still editing.
pub fn next_coarsening(
    coarsening: usize,
    latency: Duration,
    budget_ms: u64,
    editing: bool,
) -> usize {
    if budget_ms == 0 || !editing {
        return coarsening;
    }
    if latency > Duration::from_millis(budget_ms) {
        (coarsening + 1).min(MAX_COARSENING)
    } else {
        coarsening
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_frames_while_editing_coarsen_up_to_the_limit() {
        let slow = Duration::from_millis(250);
        let fast = Duration::from_millis(20);
        assert_eq!(next_coarsening(0, slow, 100, true), 1);
        assert_eq!(next_coarsening(1, slow, 100, true), 2);
        assert_eq!(next_coarsening(2, slow, 100, true), MAX_COARSENING);
        // A fast (coarse) frame keeps the level: no oscillation while editing.
        assert_eq!(next_coarsening(1, fast, 100, true), 1);
        // Not editing, or the budget switched off: unchanged.
        assert_eq!(next_coarsening(0, slow, 100, false), 0);
        assert_eq!(next_coarsening(0, slow, 0, true), 0);
    }
}
