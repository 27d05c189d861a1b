//! Users of the HTTP API and dashboard, and their API tokens: thin calls into `services::users`.

use super::error::{users_error, OpResult};
use super::Ops;
use crate::api::{NewToken, Role, TokenInfo, UserInfo};
use crate::services::users::Users;

impl Ops {
    fn users(&self) -> Users {
        Users::new(self.daemon.supervisor.state().clone())
    }

    pub(super) async fn create_user(&self, name: &str, role: Role, password: &str) -> OpResult<UserInfo> {
        self.users().create(name, role, password).await.map_err(users_error)
    }

    pub(super) async fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        password: Option<&str>,
    ) -> OpResult<UserInfo> {
        self.users().update(name, role, password).await.map_err(users_error)
    }

    pub(super) async fn delete_user(&self, name: &str) -> OpResult<()> {
        self.users().delete(name).await.map_err(users_error)
    }

    pub(super) async fn list_users(&self) -> OpResult<Vec<UserInfo>> {
        self.users().list().await.map_err(users_error)
    }

    pub(super) async fn create_token(
        &self,
        user: &str,
        name: &str,
        ttl_secs: Option<i64>,
    ) -> OpResult<NewToken> {
        self.users().create_token(user, name, ttl_secs).await.map_err(users_error)
    }

    pub(super) async fn list_tokens(&self, user: Option<&str>) -> OpResult<Vec<TokenInfo>> {
        self.users().tokens(user).await.map_err(users_error)
    }

    pub(super) async fn revoke_token(&self, id: u64) -> OpResult<TokenInfo> {
        self.users().revoke_token(id).await.map_err(users_error)
    }
}
