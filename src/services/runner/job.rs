//! One-off containers that are not procs: a build, a stack image's provisioning script. Same
//! container, same launcher; no proc.sh, the caller picks the command, the layers and the volumes.

use std::fs;
use std::path::{Path, PathBuf};

use super::{host_files, CallerStdio, LaunchWatch, Runner, RunnerError, STOP_GRACE_SECS};
use crate::host::container::passwd::{self, UserIds};
use crate::host::container::plan::{
    Bind, CgroupPlan, ExitStatus, LaunchPlan, Overlay, StdioPlan, DEFAULT_CAPABILITIES,
};
use crate::model::limits::Limits;
use crate::model::proc_data::Artifact;

/// What the root file system of a job is.
#[derive(Debug, Clone)]
pub enum JobRoot {
    /// The image's contents under these extra read-only layers (top first), with a private upper
    /// dir that is thrown away.
    Layers(Vec<PathBuf>),
    /// A writable directory that is the root itself (provisioning an image on a copy of its base).
    Dir(PathBuf),
}

/// A one-off container.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Hostname and cgroup leaf; unique among running jobs.
    pub name: String,
    /// The OS image (ignored for [`JobRoot::Dir`], whose dir is the whole root).
    pub image: Option<Artifact>,
    /// The root file system.
    pub root: JobRoot,
    /// Bind mounts.
    pub volumes: Vec<Bind>,
    /// The user and group, resolved in the root's /etc/passwd and /etc/group.
    pub user: String,
    /// See `user`.
    pub group: String,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: String,
    /// cgroup limits.
    pub limits: Limits,
    /// Pipes (raw output to the given stdout and stderr) or an interactive terminal.
    pub stdio: StdioPlan,
}

impl Runner {
    /// Fetches and unpacks an image once (shared with procs); returns its contents dir.
    pub fn prepare_image_artifact(&self, image: &Artifact) -> Result<PathBuf, RunnerError> {
        super::setup::prepare_artifact_image(self, image)
    }

    /// The ids of `user`/`group` in the root file system at `root`.
    pub fn resolve_ids(&self, root: &Path, user: &str, group: &str) -> Result<UserIds, RunnerError> {
        let read = |file: &str| super::setup::read_in_image(root, file);
        passwd::resolve(&read("/etc/passwd"), &read("/etc/group"), user, group).map_err(RunnerError::User)
    }

    /// Runs a job container to its end with the given stdio (its stdout and stderr get the raw
    /// output); returns how it ended.
    pub fn run_job(&self, job: &JobSpec, stdio: CallerStdio) -> Result<ExitStatus, RunnerError> {
        self.run_job_watched(job, stdio, &LaunchWatch::default())
    }

    /// [`Runner::run_job`], with the launcher's pid published in `watch` while it runs, so that
    /// whoever holds the watch can stop the job.
    pub fn run_job_watched(
        &self,
        job: &JobSpec,
        stdio: CallerStdio,
        watch: &LaunchWatch,
    ) -> Result<ExitStatus, RunnerError> {
        let jobs = self.layout.data_dir.join("jobs");
        fs::create_dir_all(&jobs)
            .map_err(|e| RunnerError::Io(format!("failed to create {}: {e}", jobs.display())))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", job.name))
            .tempdir_in(&jobs)
            .map_err(|e| RunnerError::Io(format!("failed to create a job dir in {}: {e}", jobs.display())))?;
        super::setup::make_container_dirs(dir.path())?;
        let (lowers, upper, user_root) = match &job.root {
            JobRoot::Layers(extra) => {
                let image = job
                    .image
                    .as_ref()
                    .ok_or_else(|| RunnerError::Invalid("a layered job needs an image".into()))?;
                let contents = self.prepare_image_artifact(image)?;
                let mut lowers = extra.clone();
                lowers.push(contents.clone());
                (lowers, dir.path().join("upper"), contents)
            }
            JobRoot::Dir(root) => (Vec::new(), root.clone(), root.clone()),
        };
        let user = self.resolve_ids(&user_root, &job.user, &job.group)?;
        let plan = LaunchPlan {
            name: job.name.clone(),
            hostname: job.name.chars().take(64).collect(),
            rootfs: Overlay {
                lowers,
                upper,
                work: dir.path().join("work"),
                target: dir.path().join("rootfs"),
                keep_mounted: false,
                rw: None,
            },
            volumes: job.volumes.clone(),
            host_files: host_files(),
            cgroup: CgroupPlan {
                root: self.cgroup_root.clone(),
                name: format!(
                    "{}/job-{}",
                    self.cgroup_parent,
                    dir.path().file_name().and_then(|n| n.to_str()).unwrap_or("job")
                ),
                limits: job.limits.clone(),
            },
            user,
            capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            network: None,
            seccomp: Default::default(),
            argv: job.argv.clone(),
            env: job.env.clone(),
            cwd: job.cwd.clone(),
            stdio: job.stdio.clone(),
            log_rotation: Default::default(),
            stop_grace_secs: STOP_GRACE_SECS,
            status_path: dir.path().join("status.json"),
        };
        self.launch(&plan, dir.path(), stdio, watch)
    }
}
