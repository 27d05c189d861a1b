//! Stack images over the API: `stacks.build` (starts the build in a task, returns its record),
//! `stacks.images`, `stacks.activate` and `stacks.follow` (the image's build log, live until the
//! build ends). The work is in `services::stacks`.

use std::path::PathBuf;

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::PendingSubscriptionSink;

use super::deploy_calls::state_error;
use super::rpc::{error, RpcHandler};
use crate::api::{codes, ImageInfo};
use crate::model::build_record::STARTED;
use crate::services::stacks::StackError;

/// Maps every stack error to its stable code: no wildcard, so a new variant must be mapped.
pub fn stack_error(e: StackError) -> ErrorObjectOwned {
    let code = match e {
        StackError::State(s) => return state_error(s),
        StackError::Invalid(_) => codes::INVALID,
        StackError::Busy(_) => codes::BUSY,
        StackError::NotFound(_) => codes::NOT_FOUND,
    };
    error(code, e.to_string())
}

impl RpcHandler {
    pub(super) async fn build_stack(&self, stack: String) -> RpcResult<ImageInfo> {
        self.daemon.stacks.build(&stack).await.map_err(stack_error)
    }

    pub(super) async fn stack_images(&self, stack: String) -> RpcResult<Vec<ImageInfo>> {
        self.daemon.stacks.images(&stack).await.map_err(stack_error)
    }

    pub(super) async fn activate_stack_image(&self, stack: String, image: String) -> RpcResult<ImageInfo> {
        self.daemon.stacks.activate(&stack, &image).await.map_err(stack_error)
    }

    /// Streams an image's build log from its start until its build has ended.
    pub(super) async fn follow_stack_image(
        &self,
        pending: PendingSubscriptionSink,
        stack: String,
        image: String,
    ) -> SubscriptionResult {
        let found = self.daemon.stacks.image(&stack, &image).await.map_err(stack_error);
        let (id, path) = match found.map(|i| (i.id, i.log_path)) {
            Ok((id, Some(path))) => (id, PathBuf::from(path)),
            Ok((_, None)) => {
                let gone = format!("image {image} of stack {stack} has no build log: gc removed it");
                pending.reject(error(codes::NOT_FOUND, gone)).await;
                return Ok(());
            }
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        let sink = pending.accept().await?;
        let state = self.daemon.supervisor.state().clone();
        super::follow::stream_log(sink, path, || {
            let state = state.clone();
            async move {
                let image = state.get_image(id).await.map_err(state_error)?;
                Ok(image.is_some_and(|i| i.status == STARTED))
            }
        })
        .await
    }
}
