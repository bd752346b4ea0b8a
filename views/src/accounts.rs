//! The accounts page (admins only): who may sign in, with which role; add, change the role,
//! disable or enable, end an account's sessions.

use serde::Serialize;

use closeloop_core::accounts::Account;

use crate::dashboard::Viewer;
use crate::render::{render_admin, RenderError};

#[derive(Debug, Serialize)]
struct AccountsPage<'a> {
    title: &'static str,
    viewer: &'a Viewer,
    accounts: Vec<AccountRow<'a>>,
    roles: [&'static str; 4],
    notice: Option<&'a str>,
    error: Option<&'a str>,
    /// The token of an account just added: shown once, never stored.
    new_token: Option<(&'a str, &'a str)>,
}

#[derive(Debug, Serialize)]
struct AccountRow<'a> {
    name: &'a str,
    role: &'static str,
    email: Option<&'a str>,
    disabled: bool,
    /// Not yet in the store: a bootstrap account (the accounts file, the Worker secret) until
    /// its first sign-in. Nothing can be changed on it before then.
    bootstrap: bool,
    version: u32,
}

pub struct AccountsView<'a> {
    pub stored: &'a [Account],
    pub bootstrap: Vec<&'a Account>,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    pub new_token: Option<(&'a str, &'a str)>,
}

pub fn accounts_page(viewer: &Viewer, view: AccountsView<'_>) -> Result<String, RenderError> {
    let mut accounts: Vec<AccountRow<'_>> = view
        .stored
        .iter()
        .map(|a| AccountRow { name: &a.name, role: a.role.as_str(), email: a.email.as_ref().map(|e| e.as_str()), disabled: a.disabled, bootstrap: false, version: a.version })
        .collect();
    accounts.extend(view.bootstrap.iter().map(|a| AccountRow {
        name: &a.name,
        role: a.role.as_str(),
        email: a.email.as_ref().map(|e| e.as_str()),
        disabled: false,
        bootstrap: true,
        version: 0,
    }));
    render_admin(
        "admin/accounts.html",
        &AccountsPage {
            title: "Accounts",
            viewer,
            accounts,
            roles: ["admin", "editor", "viewer", "owner"],
            notice: view.notice,
            error: view.error,
            new_token: view.new_token,
        },
    )
}
