//! Errors that name the file and the field they come from.

use std::fmt;

/// A render failure. `file` is the kustomization (or the file it loaded) relative to the
/// confinement root; `field` is the kustomization field, such as `patches[2]` or
/// `configMapGenerator[0].files[1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub file: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            file: None,
            field: None,
            message: message.into(),
        }
    }

    /// Fills in the file unless an inner step already named one.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        if self.file.is_none() {
            self.file = Some(file.into());
        }
        self
    }

    /// Fills in the field unless an inner step already named one.
    pub fn in_field(mut self, field: impl Into<String>) -> Self {
        if self.field.is_none() {
            self.field = Some(field.into());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, &self.field) {
            (Some(file), Some(field)) => write!(f, "{file}: {field}: {}", self.message),
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            (None, Some(field)) => write!(f, "{field}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// `bail!("...")` returns an [`Error`] built from a format string.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::new(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// Adds file and field context to a `Result`.
pub trait Context<T> {
    fn in_file(self, file: impl Into<String>) -> Result<T>;
    fn in_field(self, field: impl Into<String>) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn in_file(self, file: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.in_file(file))
    }

    fn in_field(self, field: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.in_field(field))
    }
}
