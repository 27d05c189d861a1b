//! Stack images over the API: `stacks.build` (starts the build in a task, returns its record),
//! `stacks.images`, `stacks.activate` and `stacks.follow` (the image's build log, live until the
//! build ends). The work is in `services::stacks`.

use std::path::PathBuf;

use super::error::{error, stack_error, state_error, OpResult};
use super::feed::Feed;
use super::Ops;
use crate::api::{codes, ImageInfo, LogLine};
use crate::model::build_record::STARTED;

impl Ops {
    pub(super) async fn build_stack(&self, stack: String) -> OpResult<ImageInfo> {
        // A leader's duty, like app builds: the one that takes the lead fails what is left.
        if !self.daemon.leadership.leads() {
            return Err(state_error(crate::services::state::StateError::NotLeader));
        }
        self.daemon.stacks.build(&stack).await.map_err(stack_error)
    }

    pub(super) async fn stack_images(&self, stack: String) -> OpResult<Vec<ImageInfo>> {
        self.daemon.stacks.images(&stack).await.map_err(stack_error)
    }

    pub(super) async fn activate_stack_image(&self, stack: String, image: String) -> OpResult<ImageInfo> {
        self.daemon.stacks.activate(&stack, &image).await.map_err(stack_error)
    }

    /// Streams an image's build log from its start until its build has ended.
    pub(super) async fn follow_stack_image(&self, stack: String, image: String) -> OpResult<Feed<LogLine>> {
        let found = self.daemon.stacks.image(&stack, &image).await.map_err(stack_error)?;
        let (id, path) = match (found.id, found.log_path) {
            (id, Some(path)) => (id, PathBuf::from(path)),
            (_, None) => {
                let gone = format!("image {image} of stack {stack} has no build log: gc removed it");
                return Err(error(codes::NOT_FOUND, gone));
            }
        };
        let state = self.daemon.supervisor.state().clone();
        let what = format!("the build log of image {image}");
        let elsewhere = self.log_elsewhere(&what, &format!("vr stacks log {stack} {image}"));
        Ok(super::follow::stream_log(path, elsewhere, move || {
            let state = state.clone();
            async move {
                let image = state.get_image(id).await.map_err(state_error)?;
                Ok(image.is_some_and(|i| i.status == STARTED))
            }
        }))
    }
}
