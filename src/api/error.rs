//! The one error every operation answers with, whatever the transport: a stable code (see
//! [`super::codes`]), a message that says what went wrong and what to do, and the chain of causes
//! below it (a SQLite or file system error stays visible to the caller and in the log).

use jsonrpsee::types::{ErrorObject, ErrorObjectOwned};
use serde::{Deserialize, Serialize};

/// An operation's error, as every transport carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The stable code.
    pub code: i32,
    /// What went wrong and what to do.
    pub message: String,
    /// The causes under the message, outermost first; none repeats what the message says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
}

/// What an error object's `data` holds.
#[derive(Serialize, Deserialize)]
struct ErrorData {
    causes: Vec<String>,
}

impl ApiError {
    /// An error with a code and a message, and no deeper cause.
    pub fn new(code: i32, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), causes: Vec::new() }
    }

    /// An error whose message is `e`'s, with `e`'s sources as its causes.
    pub fn caused(code: i32, e: &(dyn std::error::Error + 'static)) -> ApiError {
        let message = e.to_string();
        let mut causes: Vec<String> = Vec::new();
        let mut source = e.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Many messages already quote their cause; say each thing once.
            let said = message.contains(&text) || causes.iter().any(|c| c.contains(&text));
            if let Some(shorter) = causes.iter_mut().find(|c| text.contains(c.as_str())) {
                // A deeper cause that repeats the one above with more detail replaces it.
                *shorter = text;
            } else if !said && !text.is_empty() {
                causes.push(text);
            }
            source = cause.source();
        }
        ApiError { code, message, causes }
    }

    /// The message and its causes on one line, as logs and the audit record it.
    pub fn full(&self) -> String {
        let mut text = self.message.clone();
        for cause in &self.causes {
            text.push_str(": ");
            text.push_str(cause);
        }
        text
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, "\n  caused by: {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for ErrorObjectOwned {
    fn from(e: ApiError) -> ErrorObjectOwned {
        let data = (!e.causes.is_empty()).then_some(ErrorData { causes: e.causes });
        ErrorObject::owned(e.code, e.message, data)
    }
}

impl From<&ErrorObjectOwned> for ApiError {
    fn from(obj: &ErrorObjectOwned) -> ApiError {
        let causes = obj
            .data()
            .and_then(|raw| serde_json::from_str::<ErrorData>(raw.get()).ok())
            .map(|d| d.causes)
            .unwrap_or_default();
        ApiError { code: obj.code(), message: obj.message().to_string(), causes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to store proc web-1")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_survive_the_wire_and_are_said_once() {
        let disk = std::io::Error::other("No space left on device");
        let e = ApiError::caused(11, &Outer(disk));
        assert_eq!(e.causes, ["No space left on device"]);
        let back = ApiError::from(&ErrorObjectOwned::from(e.clone()));
        assert_eq!(back, e);
        assert_eq!(e.full(), "failed to store proc web-1: No space left on device");
        assert!(e.to_string().contains("caused by: No space left on device"));
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("failed to read x: {0}")]
        struct Quoting(#[source] std::io::Error);
        let e = ApiError::caused(6, &Quoting(std::io::Error::other("gone")));
        assert!(e.causes.is_empty());
        let plain = ApiError::new(1, "bad");
        assert!(ErrorObjectOwned::from(plain).data().is_none());
    }
}
