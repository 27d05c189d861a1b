//! Stacks' images as objects (`vr stacks build|images|activate|log`): vrd builds a stack's image
//! with the imager (its base, its provisioning script, its env), keeps the tarball in the
//! content-addressed store (`store/sha256/<hex>`, shared with build slugs) and the build's output
//! in `stack-images/<id>/build.log`, records it in the `images` table, and on success makes it the
//! stack's active image. Running procs are never touched: they name their image (name, store path,
//! md5) in their proc.yaml, and gc keeps every image a proc uses.
//!
//! The provisioning script is fetched as image.yaml's `script_url` is: an absolute path on vrd's
//! host, or an http(s):// or file:// URL, read afresh at every build (so editing the file and
//! building again makes a new image).

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::model::deploy::release::env_text;
use crate::model::deploy::{Definition, Kind, StackSpec};
use crate::model::image_data::ImageData;
use crate::model::image_record::ImageRecord;
use crate::model::proc_data::image_name_from_url;
use crate::services::builds::{BuildStore, BuildsError};
use crate::services::imager::{self, BuildOutputs, ImagerError, Provision};
use crate::services::runner::{LaunchWatch, Runner};
use crate::services::state::{BuiltImage, State, StateError};

/// Why a stack call failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The state database failed, or the stack does not exist.
    #[error(transparent)]
    State(#[from] StateError),
    /// The stack can't be built as it is, or the image can't be used.
    #[error("{0}")]
    Invalid(String),
    /// The stack is being built already.
    #[error("{0}")]
    Busy(String),
    /// No such image.
    #[error("{0}")]
    NotFound(String),
}

/// Builds and keeps stack images.
pub struct StackImages {
    runner: Arc<Runner>,
    store: BuildStore,
    state: State,
    /// Stacks whose image is being built now: one build per stack at a time.
    building: Mutex<HashSet<String>>,
}

/// The image.yaml the imager gets for a stack's image `new_name`: the stack's base, its script
/// and its env (values that are not strings as JSON).
pub fn image_data(stack: &StackSpec, new_name: &str) -> Result<ImageData, String> {
    let Some(script) = stack.provisioning_script.clone() else {
        return Err(format!(
            "stack '{}' has no provisioning_script, so its base is its image and there is nothing to build: \
             set one with `vr stacks edit {} --set provisioning_script=/path/to/script.sh`",
            stack.name, stack.name
        ));
    };
    let data = ImageData {
        base_image_url: stack.base_image_url.clone(),
        base_image_name: stack
            .base_image_name
            .clone()
            .unwrap_or_else(|| image_name_from_url(&stack.base_image_url)),
        base_image_md5: stack.base_image_md5.clone(),
        new_image_name: new_name.to_string(),
        new_image_md5: None,
        script_url: script,
        env: stack.env.iter().map(|(k, v)| (k.clone(), env_text(v))).collect(),
        unknown_keys: Vec::new(),
    };
    data.script_name().map_err(|e| format!("stack '{}': {e}", stack.name))?;
    Ok(data)
}

/// Picks `image` of `stack` from its images: by full name, or by number (`3` for `<stack>-3`).
pub fn find_image<'a>(images: &'a [ImageRecord], stack: &str, image: &str) -> Option<&'a ImageRecord> {
    let numbered = format!("{stack}-{image}");
    images.iter().find(|i| i.stack == stack && (i.name == image || i.name == numbered))
}

/// Takes a stack out of the set of stacks being built when its build ends, however it ends.
struct Claim {
    images: Arc<StackImages>,
    stack: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.images.building.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.stack);
    }
}

impl StackImages {
    /// The service.
    pub fn new(runner: Arc<Runner>, store: BuildStore, state: State) -> StackImages {
        StackImages { runner, store, state, building: Mutex::default() }
    }

    async fn stack(&self, name: &str) -> Result<StackSpec, StackError> {
        match self.state.definition(Kind::Stack, name).await? {
            Definition::Stack(s) => Ok(s),
            _ => Err(StackError::Invalid(format!("'{name}' is not a stack"))),
        }
    }

    /// The images of `stack`, oldest first.
    pub async fn images(&self, stack: &str) -> Result<Vec<ImageRecord>, StackError> {
        self.stack(stack).await?;
        Ok(self.state.list_images(Some(stack.to_string())).await?)
    }

    /// One image of `stack`, by name or number.
    pub async fn image(&self, stack: &str, image: &str) -> Result<ImageRecord, StackError> {
        let images = self.images(stack).await?;
        find_image(&images, stack, image).cloned().ok_or_else(|| {
            StackError::NotFound(format!(
                "stack {stack} has no image '{image}': `vr stacks images {stack}` lists them"
            ))
        })
    }

    /// Makes `image` the active image of `stack` again (a rollback); new builds and dispatches use
    /// it, running procs keep theirs.
    pub async fn activate(&self, stack: &str, image: &str) -> Result<ImageRecord, StackError> {
        let found = self.image(stack, image).await?;
        if !self.state.activate_image(found.id).await? {
            let why = match (found.status.as_str(), found.collected) {
                (_, Some(_)) => "gc removed its tarball".to_string(),
                (status, None) => format!("its build {status}"),
            };
            return Err(StackError::Invalid(format!(
                "image {} can't be made active: {why}; `vr stacks build {stack}` makes a new one",
                found.name
            )));
        }
        self.image(stack, &found.name).await
    }

    /// Starts building a new image of `stack` in a task of its own; returns its record (started).
    /// Its output goes to its log ([`StackImages::image`]'s `log_path`) as it happens.
    pub async fn build(self: &Arc<Self>, stack: &str) -> Result<ImageRecord, StackError> {
        let spec = self.stack(stack).await?;
        image_data(&spec, &format!("{stack}-1")).map_err(StackError::Invalid)?;
        let claim = self.claim(stack)?;
        let store = self.store.clone();
        let log_of = move |id| store.image_log(id).display().to_string();
        let record = self.state.start_image(stack.to_string(), log_of).await?;
        let (id, name) = (record.id, record.name.clone());
        let data = match image_data(&spec, &name) {
            Ok(data) => data,
            Err(e) => {
                self.state.finish_image(id, Err(e.clone())).await?;
                return Err(StackError::Invalid(e));
            }
        };
        let this = Arc::clone(self);
        let stack = stack.to_string();
        tokio::spawn(async move {
            // No gc while the tarball is stored but not yet recorded.
            let busy = this.store.busy.clone().read_owned().await;
            let worker = Arc::clone(&this);
            let outcome = tokio::task::spawn_blocking(move || worker.provision(id, &stack, data))
                .await
                .unwrap_or_else(|e| Err(format!("a daemon task failed: {e}")));
            if let Err(e) = this.state.finish_image(id, outcome).await {
                tracing::error!(error = %e, image = %name, "failed to record the end of an image build");
            }
            drop(busy);
            drop(claim);
        });
        Ok(record)
    }

    fn claim(self: &Arc<Self>, stack: &str) -> Result<Claim, StackError> {
        let mut building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if !building.insert(stack.to_string()) {
            return Err(StackError::Busy(format!(
                "stack {stack} is being built already: `vr stacks images {stack}` shows the image in progress, \
                 `vr stacks log {stack} IMAGE` follows it"
            )));
        }
        Ok(Claim { images: Arc::clone(self), stack: stack.to_string() })
    }

    /// The build itself, on a blocking thread: vr's own lines and the script's output go to the
    /// log, the tarball to the store. Returns what the record keeps, or why it failed.
    fn provision(&self, id: u64, stack: &str, data: ImageData) -> Result<BuiltImage, String> {
        let mut log = self.store.create_image_log(id).map_err(|e| e.to_string())?;
        let _ = writeln!(
            log,
            "vr: building image {} from {} with {}",
            data.new_image_name, data.base_image_url, data.script_url
        );
        let result = self.provision_into(&log, stack, &data);
        let _ = match &result {
            Ok(b) => writeln!(log, "vr: built image {}: md5 {}", data.new_image_name, b.md5),
            Err(e) => writeln!(log, "vr: image {} failed: {e}", data.new_image_name),
        };
        result
    }

    fn provision_into(&self, log: &File, stack: &str, data: &ImageData) -> Result<BuiltImage, String> {
        let kept = |e: BuildsError| e.to_string();
        let io = |e: std::io::Error| format!("failed to open /dev/null or copy an fd: {e}");
        let null = || File::options().write(true).open("/dev/null").map_err(io);
        let temp = self.store.temp_artifact().map_err(kept)?;
        let outputs = BuildOutputs {
            stdout: null()?.into(),
            stderr: null()?.into(),
            log: log.try_clone().map_err(io)?,
            tarball: temp.as_file().try_clone().map_err(io)?,
            md5: None,
        };
        let provision = Provision { image: data.clone(), term: None };
        let built = imager::build(&self.runner, &provision, outputs, &LaunchWatch::default())
            .map_err(|e| describe(e, stack, &data.new_image_name))?;
        let sha = self.store.keep(temp).map_err(kept)?;
        let url = self.store.artifact_path(&sha).display().to_string();
        Ok(BuiltImage { md5: built.md5, artifact: sha, url })
    }
}

/// The imager's error as a stack build tells it: the log is the image's, not a file of the caller.
fn describe(e: ImagerError, stack: &str, image: &str) -> String {
    match e {
        ImagerError::ScriptFailed { script, how, .. } => format!(
            "the provisioning script /{script} {how}: fix it and build again (`vr stacks log {stack} {image}` shows its output)"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stack(extra: serde_json::Value) -> StackSpec {
        let mut v = json!({"name": "web", "base_image_url": "/srv/bases/bookworm.tar.gz"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_stack_becomes_an_image_yaml_with_its_base_script_and_env() {
        let s = stack(json!({"provisioning_script": "https://h/p.sh", "env": {"LANG": "C.UTF-8", "N": 2}}));
        let d = image_data(&s, "web-3").unwrap();
        assert_eq!(d.base_image_name, "bookworm", "derived from the base's file name");
        assert_eq!(d.new_image_name, "web-3");
        assert_eq!(d.script_url, "https://h/p.sh");
        assert_eq!(d.env, [("LANG".to_string(), "C.UTF-8".to_string()), ("N".to_string(), "2".to_string())]);
        let named = stack(json!({"provisioning_script": "/p.sh", "base_image_name": "deb12"}));
        assert_eq!(image_data(&named, "web-1").unwrap().base_image_name, "deb12");
        let e = image_data(&stack(json!({})), "web-1").unwrap_err();
        assert!(e.contains("no provisioning_script") && e.contains("vr stacks edit web"), "{e}");
    }

    #[test]
    fn images_are_found_by_name_or_number_within_their_stack() {
        let image = |id, stack: &str, name: &str| ImageRecord {
            id,
            stack: stack.into(),
            name: name.into(),
            status: "succeeded".into(),
            error: None,
            md5: None,
            artifact: None,
            url: None,
            log_path: None,
            active: false,
            created: 0,
            ended: None,
            collected: None,
        };
        let all = [image(1, "web", "web-1"), image(2, "web", "web-2"), image(3, "web-2", "web-2-1")];
        assert_eq!(find_image(&all, "web", "2").map(|i| i.id), Some(2));
        assert_eq!(find_image(&all, "web", "web-1").map(|i| i.id), Some(1));
        assert_eq!(find_image(&all, "web", "web-2-1").map(|i| i.id), None, "another stack's image");
        assert_eq!(find_image(&all, "web", "9").map(|i| i.id), None);
    }
}
