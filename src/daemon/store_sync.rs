//! Every coordinator of a shared model keeps its own copy of the model's artifacts (issue 15): a
//! task copies, by sha256 and from the other coordinators, each slug and stack image the model
//! keeps that this store lacks, so whichever coordinator leads next serves them at once, even when
//! the one that built them is gone. Artifacts are also fetched on demand (`BuildStore::fill`);
//! this only does it ahead of time.

use std::collections::HashSet;
use std::time::Duration;

use crate::services::builds::BuildStore;
use crate::services::state::State;

/// How often the store is compared with the model.
const EVERY: Duration = Duration::from_secs(10);

/// Keeps `store` filled with what `state` keeps, until vrd stops.
pub fn spawn(state: State, store: BuildStore) {
    tokio::spawn(async move {
        // Said once per artifact, not every round.
        let mut failing = HashSet::new();
        loop {
            tokio::time::sleep(EVERY).await;
            if let Err(e) = sync_once(&state, &store, &mut failing).await {
                tracing::warn!(error = %e, "failed to list the model's artifacts to copy");
            }
        }
    });
}

async fn sync_once(
    state: &State,
    store: &BuildStore,
    failing: &mut HashSet<String>,
) -> Result<(), crate::services::state::StateError> {
    for sha in state.model_artifacts().await? {
        if store.artifact_path(&sha).exists() {
            continue;
        }
        match store.ensure_artifact(&sha).await {
            Ok(_) => {
                failing.remove(&sha);
            }
            Err(e) => {
                if failing.insert(sha.clone()) {
                    tracing::warn!(sha256 = %sha, error = %e, "cannot copy an artifact of the model from the other coordinators yet; trying again");
                }
            }
        }
    }
    Ok(())
}
