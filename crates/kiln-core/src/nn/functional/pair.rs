//! Two-element spatial arguments (kernel size, stride, padding, dilation) of convolution and
//! pooling.

/// A (height, width) pair. Converts from `usize` (both the same), `(usize, usize)` and
/// `[usize; 2]`, like PyTorch's `int or tuple` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pair(pub [usize; 2]);

impl Pair {
    /// The height entry.
    #[track_caller]
    pub fn h(self) -> usize {
        self.0[0]
    }

    /// The width entry.
    #[track_caller]
    pub fn w(self) -> usize {
        self.0[1]
    }
}

impl From<usize> for Pair {
    fn from(v: usize) -> Pair {
        Pair([v, v])
    }
}

impl From<(usize, usize)> for Pair {
    fn from((h, w): (usize, usize)) -> Pair {
        Pair([h, w])
    }
}

impl From<[usize; 2]> for Pair {
    fn from(v: [usize; 2]) -> Pair {
        Pair(v)
    }
}

/// An optional [`Pair`], for arguments whose PyTorch default is `None` (the stride of pooling,
/// which then equals the kernel size). Converts from `None` and from everything a [`Pair`]
/// converts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OptPair(pub Option<Pair>);

impl OptPair {
    /// The pair, or `default` when unset.
    #[track_caller]
    pub fn or(self, default: Pair) -> Pair {
        self.0.unwrap_or(default)
    }
}

impl From<Option<Pair>> for OptPair {
    fn from(v: Option<Pair>) -> OptPair {
        OptPair(v)
    }
}

impl From<Pair> for OptPair {
    fn from(v: Pair) -> OptPair {
        OptPair(Some(v))
    }
}

impl From<usize> for OptPair {
    fn from(v: usize) -> OptPair {
        OptPair(Some(v.into()))
    }
}

impl From<(usize, usize)> for OptPair {
    fn from(v: (usize, usize)) -> OptPair {
        OptPair(Some(v.into()))
    }
}

impl From<[usize; 2]> for OptPair {
    fn from(v: [usize; 2]) -> OptPair {
        OptPair(Some(v.into()))
    }
}
