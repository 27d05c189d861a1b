//! Every service error mapped to its stable code, once, for every transport. Each mapping has no
//! wildcard, so a new variant must be mapped; each keeps the error's cause chain
//! ([`ApiError::caused`]).

use crate::api::{codes, ApiError};
use crate::services::builder::BuilderError;
use crate::services::builds::BuildsError;
use crate::services::hosts::HostError;
use crate::services::imager::ImagerError;
use crate::services::peer::enroll::EnrollError;
use crate::services::runner::RunnerError;
use crate::services::stacks::StackError;
use crate::services::state::StateError;
use crate::services::supervisor::SupervisorError;
use crate::services::swarm::SwarmError;
use crate::services::users::UsersError;

/// What every operation returns.
pub type OpResult<T> = Result<T, ApiError>;

/// An error with a code and a message.
pub fn error(code: i32, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// A request that is not usable as it is.
pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(codes::INVALID, message)
}

/// A task of the daemon's that panicked or was cancelled.
pub fn task_failed(e: tokio::task::JoinError) -> ApiError {
    tracing::error!(error = %e, "a daemon task failed");
    ApiError::caused(codes::INTERNAL, &TaskFailed(e))
}

/// Runs `work` on a blocking thread: parsing what a request carries (YAML up to a MiB) must not
/// hold an async worker, or one client's request delays every other client and every restart.
pub async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> OpResult<T> + Send + 'static,
) -> OpResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(task_failed)?
}

/// YAML up to this size is parsed on the worker that took the call. Within the parser's depth
/// limit (`model::yaml::MAX_FLOW_DEPTH`) that is bounded: the worst 4 KiB (every value nested 64
/// deep) took 1.0 ms in a release build, a real proc.yaml 17 µs, against the two thread hand-offs
/// of [`off_runtime`], which on a VM wake a halted CPU each (0.13-0.3 ms of a 4.7-5.5 ms `vr
/// runner run`, benches/compare_vrd.sh). Longer text goes off the runtime.
pub const INLINE_PARSE_BYTES: usize = 4 * 1024;

/// Parses `text` with `parse`: inline when it is short ([`INLINE_PARSE_BYTES`]), else on a
/// blocking thread ([`off_runtime`]).
pub async fn parse_request<T: Send + 'static>(
    text: &str,
    parse: impl FnOnce() -> OpResult<T> + Send + 'static,
) -> OpResult<T> {
    if text.len() <= INLINE_PARSE_BYTES {
        return parse();
    }
    off_runtime(parse).await
}

#[derive(Debug, thiserror::Error)]
#[error("a daemon task failed")]
struct TaskFailed(#[source] tokio::task::JoinError);

/// The runner's errors.
pub fn runner_error(e: RunnerError) -> ApiError {
    let code = match &e {
        RunnerError::Invalid(_) => codes::INVALID,
        RunnerError::Busy(_) => codes::BUSY,
        RunnerError::NotSetUp(_) => codes::NOT_SET_UP,
        RunnerError::Artifact(_) => codes::ARTIFACT,
        RunnerError::User(_) => codes::USER,
        RunnerError::Io(_) => codes::IO,
        RunnerError::Launch(_) => codes::LAUNCH,
        RunnerError::NoRoom(_) => codes::NO_ROOM,
    };
    ApiError::caused(code, &e)
}

/// The supervisor's errors.
pub fn supervisor_error(e: SupervisorError) -> ApiError {
    let code = match e {
        SupervisorError::Runner(r) => return runner_error(r),
        SupervisorError::Unknown { .. } => codes::UNKNOWN_PROC,
        SupervisorError::State(_) => codes::STATE,
        SupervisorError::Gone(_) => codes::INTERNAL,
    };
    ApiError::caused(code, &e)
}

/// The state database's errors.
pub fn state_error(e: StateError) -> ApiError {
    let code = match &e {
        StateError::Exists { .. } => codes::EXISTS,
        StateError::NotFound { .. } => codes::NOT_FOUND,
        StateError::MissingRef { .. } | StateError::InUse { .. } => codes::REFERENCE,
        StateError::Fenced { .. } | StateError::NotLeader => codes::NOT_LEADER,
        StateError::Create { .. }
        | StateError::Open { .. }
        | StateError::Connect { .. }
        | StateError::TooNew { .. }
        | StateError::Migrate { .. }
        | StateError::Query { .. }
        | StateError::Corrupt { .. }
        | StateError::Encode { .. }
        | StateError::Spawn(_)
        | StateError::Panicked(_)
        | StateError::Closed => codes::STATE,
    };
    ApiError::caused(code, &e)
}

/// Swarm dispatch's errors.
pub fn swarm_error(e: SwarmError) -> ApiError {
    let code = match e {
        SwarmError::State(s) => return state_error(s),
        SwarmError::Invalid(_) => codes::INVALID,
        SwarmError::Build(_) | SwarmError::Uptests(_) | SwarmError::Placement(_) => codes::DISPATCH,
        SwarmError::Host(HostError::NoProc { .. }) => codes::UNKNOWN_PROC,
        SwarmError::Host(HostError::Unreachable { .. } | HostError::Failed { .. }) => codes::HOST,
        SwarmError::Balancer(_) | SwarmError::Deroute { .. } => codes::BALANCER,
    };
    ApiError::caused(code, &e)
}

/// The imager's errors.
pub fn imager_error(e: ImagerError) -> ApiError {
    let code = match e {
        ImagerError::Runner(inner) => return runner_error(inner),
        ImagerError::Invalid(_) | ImagerError::ScriptInTheWay(_) => codes::INVALID,
        ImagerError::Base { .. } | ImagerError::Script(_) => codes::ARTIFACT,
        ImagerError::Io { .. } | ImagerError::Output { .. } => codes::IO,
        ImagerError::ScriptFailed { .. } => codes::SCRIPT_FAILED,
    };
    ApiError::caused(code, &e)
}

/// The builder's errors.
pub fn builder_error(e: BuilderError) -> ApiError {
    let code = match e {
        BuilderError::Runner(r) => return runner_error(r),
        BuilderError::Invalid(_) => codes::INVALID,
        BuilderError::Checkout(_) => codes::CHECKOUT,
        BuilderError::Step { .. } | BuilderError::Cancelled => codes::BUILD_FAILED,
        BuilderError::Io(_) => codes::IO,
    };
    ApiError::caused(code, &e)
}

/// The build store's errors.
pub fn builds_error(e: BuildsError) -> ApiError {
    let code = match e {
        BuildsError::Io { .. } => codes::IO,
    };
    ApiError::caused(code, &e)
}

/// Stack images' errors.
pub fn stack_error(e: StackError) -> ApiError {
    let code = match e {
        StackError::State(s) => return state_error(s),
        StackError::Invalid(_) => codes::INVALID,
        StackError::Busy(_) => codes::BUSY,
        StackError::NotFound(_) => codes::NOT_FOUND,
    };
    ApiError::caused(code, &e)
}

/// Enrolment's errors.
pub fn enroll_error(e: EnrollError) -> ApiError {
    match e {
        EnrollError::Invalid(m) => invalid(m),
        EnrollError::State(s) => state_error(s),
    }
}

/// Users' and tokens' errors.
pub fn users_error(e: UsersError) -> ApiError {
    match e {
        UsersError::Invalid(m) => invalid(m),
        UsersError::NotFound(m) => error(codes::NOT_FOUND, m),
        UsersError::State(s) => state_error(s),
        UsersError::Internal(m) => error(codes::INTERNAL, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_error_reaches_the_caller_under_the_state_message() {
        let sqlite = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        let e = state_error(StateError::Query { what: "store proc web-1".into(), source: sqlite.into() });
        assert_eq!(e.code, codes::STATE);
        assert!(e.message.contains("store proc web-1"), "{e:?}");
        assert_eq!(e.causes, ["Error code 13: database or disk is full"]);
    }

    #[tokio::test]
    async fn short_text_is_parsed_on_the_calling_thread_and_long_text_off_it() {
        let here = std::thread::current().id();
        async fn where_parsed(len: usize) -> std::thread::ThreadId {
            parse_request(&"a".repeat(len), || Ok(std::thread::current().id())).await.unwrap()
        }
        assert_eq!(where_parsed(INLINE_PARSE_BYTES).await, here);
        assert_ne!(where_parsed(INLINE_PARSE_BYTES + 1).await, here);
    }
}
