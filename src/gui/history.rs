//! Undo/redo of chain edits: snapshots of the whole chain (chains are small), with edits that
//! continue the same gesture (dragging one slider) merged into one step.

use crate::chain::Chain;

/// Most steps kept.
const MAX_STEPS: usize = 200;

/// The chain's past and future.
#[derive(Default)]
pub struct History {
    undo: Vec<(Chain, Option<String>)>,
    redo: Vec<Chain>,
    /// The gesture the last recorded step belongs to (e.g. "param:3:sigma").
    open_gesture: Option<String>,
}

impl History {
    /// Record `before` as the state to return to. Edits with the same `gesture` key in a row
    /// (one slider drag) make a single undo step.
    pub fn record(&mut self, before: &Chain, gesture: Option<&str>) {
        let same = gesture.is_some() && self.open_gesture.as_deref() == gesture;
        if !same {
            self.undo.push((before.clone(), gesture.map(str::to_owned)));
            if self.undo.len() > MAX_STEPS {
                self.undo.remove(0);
            }
        }
        self.open_gesture = gesture.map(str::to_owned);
        self.redo.clear();
    }

    /// End the current gesture, so the next edit is its own step.
    pub fn close_gesture(&mut self) {
        self.open_gesture = None;
    }

    /// Step back: returns the chain to restore.
    pub fn undo(&mut self, current: &Chain) -> Option<Chain> {
        let (previous, _) = self.undo.pop()?;
        self.redo.push(current.clone());
        self.open_gesture = None;
        Some(previous)
    }

    /// Step forward again.
    pub fn redo(&mut self, current: &Chain) -> Option<Chain> {
        let next = self.redo.pop()?;
        self.undo.push((current.clone(), None));
        self.open_gesture = None;
        Some(next)
    }

    /// Whether there is something to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether there is something to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainOp;
    use crate::ops;

    fn chain(n: usize) -> Chain {
        Chain {
            name: None,
            vectorize: None,
            ops: (0..n)
                .map(|_| ChainOp::new(ops::find("grayscale").unwrap()))
                .collect(),
        }
    }

    #[test]
    fn undo_redo_and_gesture_merging() {
        let mut h = History::default();
        h.record(&chain(0), None);
        h.record(&chain(1), Some("drag"));
        h.record(&chain(1), Some("drag"));
        h.close_gesture();
        let now = chain(2);
        assert_eq!(h.undo(&now).unwrap().ops.len(), 1);
        assert_eq!(h.undo(&chain(1)).unwrap().ops.len(), 0);
        assert!(!h.can_undo());
        assert_eq!(h.redo(&chain(0)).unwrap().ops.len(), 1);
        assert!(h.can_redo());
    }
}
