//! `OpStates`: the driver-held state of each kind of operation, kept by a backend's core
//! and found by type, so the core holds op state without knowing any op.
//!
//! An operation that lends memory (a send's iovecs, a connect's address) or waits for
//! readiness (the readiness backend's armed receives) keeps that in a state type of its
//! own file. The core makes the state on first use and hands it to the backend's hooks
//! (io_uring: a completion was reaped; readiness: a descriptor is ready, a cancel, a
//! deadline) through a trait object.

use std::any::{Any, TypeId};

/// Downcasting for op-state trait objects (the supertrait of each backend's op-state
/// trait), implemented for every `'static` type. Call it on the state itself (`(*s)`,
/// `(**s)`): a box or a `'static` reference is `Any` too.
pub(crate) trait AsAny: Any {
    /// The state as `Any`, to downcast to its own type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The state's type name (for logs).
    fn type_name(&self) -> &'static str;
}

impl<T: Any> AsAny for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// The op states of one core: trait objects `S` (the backend's op-state trait), at most
/// one per type, in the order they were first used. A state's index never changes (the
/// readiness backend marks descriptors with it).
pub(crate) struct OpStates<S: ?Sized> {
    list: Vec<(TypeId, Box<S>)>,
    /// The index last found: looked at first (a send's start and its reclaim ask for the
    /// same state back to back).
    last: usize,
}

impl<S: ?Sized> Default for OpStates<S> {
    fn default() -> Self {
        OpStates {
            list: Vec::new(),
            last: 0,
        }
    }
}

impl<S: ?Sized + AsAny> OpStates<S> {
    /// The state of type `T` and its index; `make` boxes a new one on first use.
    /// A handful of states exist, so a linear look-up by type id is the fast way; the
    /// type is checked once, when the state is made, not on every look-up (this runs on
    /// every send).
    #[inline(always)]
    pub(crate) fn get_or_make<T: Any>(&mut self, make: impl FnOnce() -> Box<S>) -> (usize, &mut T) {
        let id = TypeId::of::<T>();
        let index = if self.list.get(self.last).is_some_and(|(t, _)| *t == id) {
            self.last
        } else {
            let found = self.list.iter().position(|(t, _)| *t == id);
            let i = found.unwrap_or_else(|| self.insert::<T>(make()));
            self.last = i;
            i
        };
        let state: *mut S = &mut *self.list[index].1;
        // SAFETY: the entry at `index` is stored under `TypeId::of::<T>()`, and `insert`
        // (the only way into `list`) stores a box under the type id of what it holds, so
        // the box holds a `T`: the data pointer of the trait object points to a live `T`,
        // borrowed mutably through `self` for the returned lifetime.
        (index, unsafe { &mut *state.cast::<T>() })
    }

    /// Store a new state, checking that it is a `T` (the invariant `get_or_make`'s cast
    /// rests on); returns its index.
    #[cold]
    fn insert<T: Any>(&mut self, mut state: Box<S>) -> usize {
        assert!(
            (*state).as_any_mut().is::<T>(),
            "an op state made as another type than asked"
        );
        self.list.push((TypeId::of::<T>(), state));
        self.list.len() - 1
    }

    /// The state at `index` (from [`OpStates::get_or_make`]).
    pub(crate) fn at(&mut self, index: usize) -> &mut S {
        &mut self.list[index].1
    }

    /// Every state, in index order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut S> {
        self.list.iter_mut().map(|(_, s)| &mut **s)
    }

    /// Every state, in index order, read-only.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &S> {
        self.list.iter().map(|(_, s)| &**s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Named: AsAny {
        fn name(&self) -> &'static str;
    }

    #[derive(Default)]
    struct A(u32);
    #[derive(Default)]
    struct B;
    impl Named for A {
        fn name(&self) -> &'static str {
            "a"
        }
    }
    impl Named for B {
        fn name(&self) -> &'static str {
            "b"
        }
    }

    #[test]
    fn a_state_is_made_once_and_keeps_its_index() {
        let mut s = OpStates::<dyn Named>::default();
        let (ia, a) = s.get_or_make::<A>(|| Box::new(A::default()));
        a.0 = 7;
        let (ib, _) = s.get_or_make::<B>(|| Box::new(B));
        let (ia2, a) = s.get_or_make::<A>(|| unreachable!("made twice"));
        assert_eq!((ia, ib, ia2, a.0), (0, 1, 0, 7));
        assert_eq!(s.at(1).name(), "b");
        assert_eq!(s.iter().map(|x| x.name()).collect::<Vec<_>>(), ["a", "b"]);
        let first = s.iter_mut().next().unwrap();
        assert!((*first).type_name().ends_with("::A"));
        assert_eq!(s.iter().count(), 2);
    }

    #[test]
    #[should_panic(expected = "an op state made as another type")]
    fn a_state_made_as_another_type_than_asked_is_refused() {
        let mut s = OpStates::<dyn Named>::default();
        s.get_or_make::<A>(|| Box::new(B));
    }
}
