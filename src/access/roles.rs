//! Staff roles. Every staff route states the roles it admits.

use serde::{Deserialize, Serialize};

/// A staff member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Serves customers at the counter; takes handoffs; asks the knowledge helper.
    Teller,
    /// Serves customers over video from a remote centre.
    RemoteExpert,
    /// Writes knowledge articles.
    ContentEditor,
    /// Reviews and publishes knowledge articles written by others.
    ContentReviewer,
    /// Registers kiosks and staff, watches operations.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Teller,
        Role::RemoteExpert,
        Role::ContentEditor,
        Role::ContentReviewer,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Teller => "teller",
            Role::RemoteExpert => "remote_expert",
            Role::ContentEditor => "content_editor",
            Role::ContentReviewer => "content_reviewer",
            Role::Admin => "admin",
        }
    }

    /// Parses one role name as written in the CLI and the database.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// Parses a comma-separated list; `Err` names the first unknown role.
    pub fn parse_list(s: &str) -> Result<Vec<Role>, String> {
        let mut roles = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let role = Role::parse(part).ok_or_else(|| part.trim().to_string())?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        Ok(roles)
    }

    pub fn join(roles: &[Role]) -> String {
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_lists_round_trip_and_reject_unknown_names() {
        let roles = Role::parse_list("teller, admin,teller").unwrap();
        assert_eq!(roles, vec![Role::Teller, Role::Admin]);
        assert_eq!(Role::join(&roles), "teller,admin");
        assert_eq!(Role::parse_list("teller,boss"), Err("boss".to_string()));
    }
}
