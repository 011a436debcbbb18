//! How a case reports a broken behaviour: a [`Failure`] saying what was
//! expected, what happened and where.

use std::fmt;

/// What a case returns: `Ok(())`, or the first [`Failure`] it met.
pub type Outcome = Result<(), Failure>;

/// A case found a behaviour that breaks the contract.
///
/// Its message names the broken rule, the values seen and the line of the
/// suite that checked it. Any error converts into a `Failure` with `?`, so
/// an I/O or store error also fails the case, with its message and sources.
///
/// ```
/// use conformance_tests::Failure;
///
/// let failure = Failure::new("create overwrote an existing record");
/// assert_eq!(failure.to_string(), "create overwrote an existing record");
/// ```
pub struct Failure {
    message: String,
}

impl Failure {
    /// A failure with `message`.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Failure {
    // A test returning `Err(failure)` prints this: the plain message reads
    // better than a struct.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self { message }
    }
}

/// Fails the case with a formatted message, prefixed by the suite's source
/// location.
macro_rules! fail {
    ($($message:tt)+) => {
        return ::core::result::Result::Err($crate::Failure::new(format!(
            "{}:{}: {}",
            file!(),
            line!(),
            format_args!($($message)+)
        )))
    };
}

/// Fails the case unless `cond` holds.
macro_rules! check {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            $crate::failure::fail!($($message)+);
        }
    };
}

/// Fails the case unless `left == right`, showing both.
macro_rules! check_eq {
    ($left:expr, $right:expr, $($message:tt)+) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    $crate::failure::fail!(
                        "{}\n  found: {:?}\n   want: {:?}",
                        format_args!($($message)+),
                        left,
                        right
                    );
                }
            }
        }
    };
}

pub(crate) use {check, check_eq, fail};
