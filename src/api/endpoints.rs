//! The endpoints the exporter calls: `Endpoint` (the `endpoint` metric label and the permission
//! each needs) and the `Client` method of each list endpoint and of `whoami`. The activities
//! endpoint has its own file, `activities.rs`.

use super::decode::{Identity, Objects};
use super::{ApiError, Client, Priority, RawObject, WhoAmI};

/// The endpoints the exporter calls: the `endpoint` metric label and the permission each needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    WhoAmI,
    Organizations,
    Activities,
    Services,
    Backups,
    Keys,
    Members,
    Invitations,
}

impl Endpoint {
    /// Every endpoint, e.g. for `validate` to probe each permission.
    pub const ALL: [Endpoint; 8] = [
        Endpoint::WhoAmI,
        Endpoint::Organizations,
        Endpoint::Activities,
        Endpoint::Services,
        Endpoint::Backups,
        Endpoint::Keys,
        Endpoint::Members,
        Endpoint::Invitations,
    ];

    /// The fixed `endpoint` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::WhoAmI => "whoami",
            Endpoint::Organizations => "organizations",
            Endpoint::Activities => "activities",
            Endpoint::Services => "services",
            Endpoint::Backups => "backups",
            Endpoint::Keys => "keys",
            Endpoint::Members => "members",
            Endpoint::Invitations => "invitations",
        }
    }

    /// The API key permission the vendor's spec declares for the endpoint (docs §6); `None`
    /// where it declares none (`instanceGetList`, `organizationGetList`, `whoamiGet`).
    pub fn permission(self) -> Option<&'static str> {
        match self {
            Endpoint::Activities => Some("control-plane:organization:view-activities"),
            Endpoint::Keys => Some("control-plane:organization:view-api-keys"),
            Endpoint::Members | Endpoint::Invitations => Some("control-plane:organization:view"),
            Endpoint::Backups => Some("control-plane:service:view-backups"),
            Endpoint::Services | Endpoint::Organizations | Endpoint::WhoAmI => None,
        }
    }
}

impl Client {
    /// `GET /v1/whoami` (beta): the caller's identity; `Ok(None)` when the endpoint answers 404.
    pub async fn whoami(&self) -> Result<Option<WhoAmI>, ApiError> {
        let url = self.url(&["v1", "whoami"]);
        let r = match self
            .inner
            .fetch(Endpoint::WhoAmI, &url, &Identity, Priority::Normal)
            .await
        {
            Ok(page) => Ok(Some(page.result)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        self.inner.finish(Endpoint::WhoAmI, r)
    }

    /// `GET /v1/organizations`: the organization(s) the key can see (every page).
    pub async fn organizations(&self) -> Result<Vec<RawObject>, ApiError> {
        self.list(Endpoint::Organizations, &["v1", "organizations"], "id")
            .await
    }

    /// `GET /v1/organizations/{org}/services`.
    pub async fn services(&self, org: &str) -> Result<Vec<RawObject>, ApiError> {
        self.list(
            Endpoint::Services,
            &["v1", "organizations", org, "services"],
            "id",
        )
        .await
    }

    /// `GET /v1/organizations/{org}/services/{service_id}/backups` (most recent first).
    pub async fn backups(&self, org: &str, service_id: &str) -> Result<Vec<RawObject>, ApiError> {
        let path = [
            "v1",
            "organizations",
            org,
            "services",
            service_id,
            "backups",
        ];
        self.list(Endpoint::Backups, &path, "id").await
    }

    /// `GET /v1/organizations/{org}/keys` (every page).
    pub async fn keys(&self, org: &str) -> Result<Vec<RawObject>, ApiError> {
        self.list(Endpoint::Keys, &["v1", "organizations", org, "keys"], "id")
            .await
    }

    /// `GET /v1/organizations/{org}/members`; ids come from `userId`.
    pub async fn members(&self, org: &str) -> Result<Vec<RawObject>, ApiError> {
        self.list(
            Endpoint::Members,
            &["v1", "organizations", org, "members"],
            "userId",
        )
        .await
    }

    /// `GET /v1/organizations/{org}/invitations`.
    pub async fn invitations(&self, org: &str) -> Result<Vec<RawObject>, ApiError> {
        self.list(
            Endpoint::Invitations,
            &["v1", "organizations", org, "invitations"],
            "id",
        )
        .await
    }

    async fn list(
        &self,
        endpoint: Endpoint,
        path: &[&str],
        id_key: &'static str,
    ) -> Result<Vec<RawObject>, ApiError> {
        let url = self.url(path);
        let r = self
            .inner
            .pages(
                endpoint,
                url,
                &Objects { id_key },
                Priority::Normal,
                Vec::extend,
            )
            .await
            .map(|page| page.result);
        self.inner.finish(endpoint, r)
    }
}
