//! Build-or-wait: a dispatch uses the app's current build at its version on its stack's image,
//! waits for one another dispatch is making, or makes it. A failed build fails every waiter with
//! the build's error (VR dropped its waiters).

use std::path::PathBuf;

use tokio::sync::watch;

use super::progress::Trace;
use super::{SwarmError, Swarms};
use crate::model::build_data::BuildData;
use crate::model::build_record::{BuildRecord, SUCCEEDED};
use crate::model::deploy::release::{ArtifactRef, BuildRef, ImageRef};
use crate::model::deploy::{AppSpec, Definition, Kind, StackSpec};
use crate::model::proc_data::image_name_from_url;
use crate::services::builder::BuildWatch;
use crate::services::builds::recorded::Outputs;

/// (app, version, image md5).
pub(super) type BuildKey = (String, String, String);

/// The outcome of a build in progress, once it is known.
pub(super) type Waiters = watch::Receiver<Option<Result<BuildRef, String>>>;

impl Swarms {
    /// The image a stack's apps build and run on: its active image, or its base when it has no
    /// provisioning script.
    pub(super) async fn stack_image(&self, stack_name: &str) -> Result<ImageRef, SwarmError> {
        let Definition::Stack(stack) = self.state.definition(Kind::Stack, stack_name).await? else {
            return Err(SwarmError::Invalid(format!("'{stack_name}' is not a stack")));
        };
        if let Some(image) = self.state.active_image(stack.name.clone()).await? {
            let artifact =
                self.stored(&image.sha256, &format!("the active image of stack {}", stack.name)).await?;
            return Ok(ImageRef {
                name: image.name,
                url: String::new(),
                md5: image.md5,
                artifact: Some(artifact),
            });
        }
        if stack.provisioning_script.is_some() {
            return Err(SwarmError::Invalid(format!(
                "stack '{}' has a provisioning script but no image yet: build it with `vr stacks build {}`",
                stack.name, stack.name
            )));
        }
        base_image(&stack).await
    }

    /// The build of `app` at `version` on `image`: the current one, one being made, or a new one
    /// (always a new one with `fresh`).
    pub(super) async fn build_for(
        &self,
        app: &AppSpec,
        version: &str,
        image: &ImageRef,
        fresh: bool,
        trace: &Trace,
    ) -> Result<BuildRef, SwarmError> {
        let key: BuildKey = (app.name.clone(), version.to_string(), image.md5.clone());
        loop {
            if let Some(mut waiting) = self.in_progress(&key) {
                trace
                    .step(
                        &["build", "wait"],
                        format!("Waiting for the build of {} {version} already running", app.name),
                    )
                    .await;
                let outcome = waiting.wait_for(Option::is_some).await.map(|o| o.clone());
                match outcome {
                    // A build that started after this dispatch asked is as fresh as a new one.
                    Ok(Some(result)) => return result.map_err(SwarmError::Build),
                    // The builder went away without an outcome: look again.
                    Ok(None) | Err(_) => continue,
                }
            }
            if !fresh {
                let current = self.state.current_build(key.0.clone(), key.1.clone(), key.2.clone()).await?;
                if let Some(record) = current.filter(|r| r.status == SUCCEEDED) {
                    match self.build_ref(&record, image).await {
                        Ok(found) => {
                            trace
                                .step(
                                    &["build"],
                                    format!("Using build {} of {} {version}", record.id, app.name),
                                )
                                .await;
                            return Ok(found);
                        }
                        // Another coordinator of the model built it, and none has it now: build it here.
                        Err(e) => {
                            let message = format!(
                                "Build {} of {} {version} can't be used here ({e}); building it anew",
                                record.id, app.name
                            );
                            trace.step(&["build"], message).await;
                        }
                    }
                }
            }
            let Some(tell) = self.claim(&key) else { continue };
            let result = self.run_build(app, version, image, trace).await;
            let shared = result.as_ref().map(Clone::clone).map_err(ToString::to_string);
            let _ = tell.send(Some(shared));
            self.building.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            return result;
        }
    }

    /// VR's `build APP TAG`: a new build of the app at `version` on its stack's image, in a task
    /// of its own; returns the trace id its steps are logged under.
    pub async fn start_build(
        self: &std::sync::Arc<Self>,
        app: &str,
        version: &str,
    ) -> Result<String, SwarmError> {
        crate::model::names::version(version).map_err(|e| SwarmError::Invalid(e.to_string()))?;
        self.ensure_leader()?;
        let Definition::App(app) = self.state.definition(Kind::App, app).await? else {
            return Err(SwarmError::Invalid(format!("'{app}' is not an app")));
        };
        let trace = self.trace(&app.name).about_app();
        let id = trace.id.clone();
        let (this, version) = (std::sync::Arc::clone(self), version.to_string());
        tokio::spawn(async move {
            let result = match this.stack_image(&app.stack).await {
                Ok(image) => this.build_for(&app, &version, &image, true, &trace).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(b) => {
                    trace
                        .step(
                            &["build", "done"],
                            format!("Build {} of {} {version} finished", b.id, app.name),
                        )
                        .await
                }
                Err(e) => {
                    trace
                        .step(
                            &["build", "failed", "aborted"],
                            format!("Build of {} {version} aborted: {e}", app.name),
                        )
                        .await
                }
            }
        });
        Ok(id)
    }

    fn in_progress(&self, key: &BuildKey) -> Option<Waiters> {
        self.building.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// Registers this dispatch as the one building `key`; None when another got there first.
    fn claim(&self, key: &BuildKey) -> Option<watch::Sender<Option<Result<BuildRef, String>>>> {
        let mut building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if building.contains_key(key) {
            return None;
        }
        let (tell, waiters) = watch::channel(None);
        building.insert(key.clone(), waiters);
        Some(tell)
    }

    async fn run_build(
        &self,
        app: &AppSpec,
        version: &str,
        image: &ImageRef,
        trace: &Trace,
    ) -> Result<BuildRef, SwarmError> {
        let data = self.build_data(app, version, image).await?;
        let (started, id) = tokio::sync::oneshot::channel();
        let announce = async {
            if let Ok(id) = id.await {
                let message = format!(
                    "Building {} {version} on {} as build {id} (`vr builds log {id} -f` follows its output)",
                    app.name, image.name
                );
                trace.build_started(id, message).await;
            }
        };
        let run = self.builds.run(
            data,
            Some(image.md5.clone()),
            Outputs::Kept,
            BuildWatch::default(),
            Some(started),
        );
        let (ran, ()) = tokio::join!(run, announce);
        let (id, result) = ran?;
        if let Err(e) = result {
            let message = format!(
                "Build {id} of {} {version} failed: {e}; `vr builds log {id}` has its output",
                app.name
            );
            trace.step(&["build", "failed"], message.clone()).await;
            return Err(SwarmError::Build(message));
        }
        let record = self
            .state
            .get_build(id)
            .await?
            .ok_or_else(|| SwarmError::Build(format!("build {id} has no record")))?;
        trace
            .step(
                &["build", "success"],
                format!(
                    "Built {} {version}: build {id}, app commit {}",
                    app.name,
                    record.app_commit.clone().unwrap_or_default()
                ),
            )
            .await;
        self.build_ref(&record, image).await
    }

    /// build.yaml for the app: its buildpack pinned (the app's `.buildpacks` is then ignored), or
    /// every buildpack in detect order; its build env.
    async fn build_data(
        &self,
        app: &AppSpec,
        version: &str,
        image: &ImageRef,
    ) -> Result<BuildData, SwarmError> {
        let (buildpack_url, buildpack_urls) = match &app.buildpack {
            Some(name) => match self.state.definition(Kind::Buildpack, name).await? {
                Definition::Buildpack(b) => (Some(b.repo_url), Vec::new()),
                _ => {
                    return Err(SwarmError::Invalid(format!(
                        "app '{}': '{name}' is not a buildpack",
                        app.name
                    )))
                }
            },
            None => {
                let all = self.state.list_definitions(Kind::Buildpack).await?;
                let urls = all
                    .into_iter()
                    .filter_map(|d| if let Definition::Buildpack(b) = d { Some(b.repo_url) } else { None })
                    .collect();
                (None, urls)
            }
        };
        Ok(BuildData {
            app_name: app.name.clone(),
            app_repo_type: app.repo_type,
            app_repo_url: app.repo_url.clone(),
            version: version.to_string(),
            app_commit: None,
            buildpack_url,
            buildpack_urls,
            buildpack_version: None,
            image_name: Some(image.name.clone()),
            // Builds run on this vrd: an image of the store is read from it.
            image_url: match &image.artifact {
                Some(a) => self.builds.store.artifact_path(&a.sha256).display().to_string(),
                None => image.url.clone(),
            },
            image_md5: Some(image.md5.clone()),
            build_md5: None,
            release_data: None,
            build_env: app.build_env.clone(),
            unknown_keys: Vec::new(),
        })
    }

    async fn build_ref(&self, record: &BuildRecord, image: &ImageRef) -> Result<BuildRef, SwarmError> {
        let missing = || SwarmError::Build(format!("build {} has no stored slug; build it again", record.id));
        let sha = record.artifact.as_ref().ok_or_else(missing)?;
        Ok(BuildRef {
            id: record.id,
            version: record.version.clone(),
            url: String::new(),
            md5: record.build_md5.clone().ok_or_else(missing)?,
            artifact: Some(self.stored(sha, &format!("the slug of build {}", record.id)).await?),
            image: image.clone(),
            env: record.env.clone(),
        })
    }

    /// A store file by content, with its size (fetched from another coordinator of a shared
    /// model when this store lacks it); an error naming `what` when no one has it.
    async fn stored(&self, sha256: &str, what: &str) -> Result<ArtifactRef, SwarmError> {
        let missing =
            |e: String| SwarmError::Build(format!("{what} is missing from the store ({e}); build it again"));
        let path = self.builds.store.ensure_artifact(sha256).await.map_err(missing)?;
        let meta = std::fs::metadata(&path).map_err(|e| missing(format!("{}: {e}", path.display())))?;
        Ok(ArtifactRef { sha256: sha256.to_string(), size: meta.len() })
    }
}

/// A stack's base tarball as its image; its md5 is computed when the stack does not give it and
/// the tarball is a local file.
async fn base_image(stack: &StackSpec) -> Result<ImageRef, SwarmError> {
    let url = stack.base_image_url.clone();
    let name = stack.base_image_name.clone().unwrap_or_else(|| image_name_from_url(&url));
    let md5 = match &stack.base_image_md5 {
        Some(md5) => md5.clone(),
        None => {
            let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(&url));
            if !path.is_absolute() {
                return Err(SwarmError::Invalid(format!(
                    "stack '{}': give base_image_md5 for {url}, or use a local path vrd can hash",
                    stack.name
                )));
            }
            tokio::task::spawn_blocking(move || crate::host::image::md5_file(&path))
                .await
                .map_err(|e| SwarmError::Invalid(e.to_string()))?
                .map_err(|e| SwarmError::Invalid(format!("stack '{}': {e}", stack.name)))?
        }
    };
    Ok(ImageRef { name, url, md5, artifact: None })
}
