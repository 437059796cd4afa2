//! [`Merge`]: two key-ordered iterators as one, the left one winning on equal keys.

use std::cmp::Ordering;
use std::iter::Peekable;

/// The union of two iterators of `(key, item)` in strictly increasing key order, in key
/// order; on a key both hold, the left item (the right one is skipped).
pub(crate) struct Merge<A: Iterator, B: Iterator> {
    left: Peekable<A>,
    right: Peekable<B>,
}

impl<A: Iterator, B: Iterator> Merge<A, B> {
    /// Merges `left` over `right`.
    pub(crate) fn new(left: A, right: B) -> Self {
        Self {
            left: left.peekable(),
            right: right.peekable(),
        }
    }
}

impl<'a, K: Ord + 'a, T, A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = (&'a K, T)>,
    B: Iterator<Item = (&'a K, T)>,
{
    type Item = (&'a K, T);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.left.peek(), self.right.peek()) {
            (Some((l, _)), Some((r, _))) => l.cmp(r),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Less => self.left.next(),
            Ordering::Greater => self.right.next(),
            Ordering::Equal => {
                self.right.next();
                self.left.next()
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (l_lo, l_hi) = self.left.size_hint();
        let (r_lo, r_hi) = self.right.size_hint();
        let hi = l_hi.and_then(|l| r_hi.and_then(|r| l.checked_add(r)));
        (l_lo.max(r_lo), hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_wins_and_order_is_kept() {
        let l = [(1, 'a'), (3, 'b'), (5, 'c')];
        let r = [(0, 'x'), (3, 'y'), (4, 'z'), (9, 'w')];
        let got: Vec<_> = Merge::new(
            l.iter().map(|(k, v)| (k, *v)),
            r.iter().map(|(k, v)| (k, *v)),
        )
        .map(|(k, v)| (*k, v))
        .collect();
        assert_eq!(
            got,
            vec![(0, 'x'), (1, 'a'), (3, 'b'), (4, 'z'), (5, 'c'), (9, 'w')]
        );
    }
}
