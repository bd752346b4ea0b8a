//! Accounts, for admins: add one (its token shown once), change a role, disable or enable,
//! end an account's sessions. Each change is a conditional write on the account's version, so
//! two admins changing one account at once cannot overwrite each other, and each is audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use closeloop_core::accounts::{Account, Role};
use closeloop_core::audit::AuditAction;
use closeloop_core::model::{Email, Locale, Token};
use closeloop_views::accounts::{accounts_page, AccountsView};
use closeloop_views::dashboard::Viewer;

use super::{audit_or_log, html, message, store_failed, AdminConfig, CheckedForm, SignedIn};
use crate::AppState;

fn not_allowed(viewer: &Viewer) -> Response {
    message(StatusCode::FORBIDDEN, Some(viewer), "Not allowed", "Only admins manage accounts.")
}

fn admin_config(state: &AppState) -> Option<&AdminConfig> {
    state.admin.as_deref()
}

/// The page, with the store's accounts and the bootstrap accounts not stored yet.
async fn page(state: &AppState, viewer: &Viewer, status: StatusCode, notice: Option<&str>, error: Option<&str>, new_token: Option<(&str, &str)>) -> Response {
    let stored = match state.services.store.accounts().await {
        Ok(stored) => stored,
        Err(e) => return store_failed(e, viewer),
    };
    let bootstrap = admin_config(state).map(|c| c.accounts.iter().filter(|b| !stored.iter().any(|a| a.name == b.name)).collect()).unwrap_or_default();
    html(status, accounts_page(viewer, AccountsView { stored: &stored, bootstrap, notice, error, new_token }))
}

pub async fn accounts(State(state): State<AppState>, who: SignedIn) -> Response {
    if who.account.role != Role::Admin {
        return not_allowed(&who.viewer);
    }
    page(&state, &who.viewer, StatusCode::OK, None, None, None).await
}

/// Reads the add form into an account with a fresh token, or says what is wrong.
fn new_account(fields: &std::collections::BTreeMap<String, String>) -> Result<(Account, String), String> {
    let field = |name: &str| fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let role = Role::parse(field("role").unwrap_or("")).ok_or("Choose a role: admin, editor, viewer or owner.")?;
    let email = field("email").map(Email::parse).transpose().map_err(|e| e.to_string())?;
    let locale = match field("locale") {
        Some(code) => Some(Locale::parse(code).ok_or("The digest language is en, sv or da.")?),
        None => None,
    };
    let time_zone = field("time_zone").map(closeloop_core::time::Zone::parse).transpose().map_err(|e| e.to_string())?;
    let token = Token::from_random_bytes(*uuid::Uuid::new_v4().as_bytes()).as_str().to_owned();
    let account = Account::new(field("name").unwrap_or(""), role, email, locale, time_zone, &token).map_err(|e| e.to_string())?;
    Ok((account, token))
}

pub async fn add_account(State(state): State<AppState>, posted: CheckedForm) -> Response {
    let CheckedForm { account: admin, viewer, fields, client } = posted;
    if admin.role != Role::Admin {
        return not_allowed(&viewer);
    }
    let (account, token) = match new_account(&fields) {
        Ok(made) => made,
        Err(problem) => return page(&state, &viewer, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&problem), None).await,
    };
    let bootstrap_name = admin_config(&state).is_some_and(|c| c.accounts.by_name(&account.name).is_some());
    if bootstrap_name {
        return page(&state, &viewer, StatusCode::CONFLICT, None, Some("An account of the accounts file has this name: choose another."), None).await;
    }
    match state.services.store.put_account(&account).await {
        Ok(true) => {
            audit_or_log(&state, &admin.name, &client, AuditAction::AccountAdded, &format!("{}: {}", account.name, account.role.as_str())).await;
            let notice = format!("Added {} as {}.", account.name, account.role.as_str());
            page(&state, &viewer, StatusCode::OK, Some(&notice), None, Some((&account.name, &token))).await
        }
        Ok(false) => page(&state, &viewer, StatusCode::CONFLICT, None, Some("An account has this name already: choose another."), None).await,
        Err(e) => store_failed(e, &viewer),
    }
}

pub async fn change_account(State(state): State<AppState>, posted: CheckedForm) -> Response {
    let CheckedForm { account: admin, viewer, fields, client } = posted;
    if admin.role != Role::Admin {
        return not_allowed(&viewer);
    }
    let store = state.services.store.as_ref();
    let name = fields.get("name").map(String::as_str).unwrap_or("");
    let seen: Option<u32> = fields.get("version").and_then(|v| v.parse().ok());
    let mut account = match store.account(name).await {
        Ok(Some(account)) => account,
        Ok(None) => return page(&state, &viewer, StatusCode::NOT_FOUND, None, Some("There is no such account (an account of the accounts file can be changed after its first sign-in)."), None).await,
        Err(e) => return store_failed(e, &viewer),
    };
    if seen != Some(account.version) {
        return page(&state, &viewer, StatusCode::CONFLICT, None, Some("Someone changed this account meanwhile: look again and repeat the change."), None).await;
    }
    let what = match fields.get("action").map(String::as_str) {
        Some("role") => match fields.get("role").and_then(|r| Role::parse(r)) {
            Some(Role::Owner) if account.email.is_none() => {
                return page(&state, &viewer, StatusCode::UNPROCESSABLE_ENTITY, None, Some("An owner needs an email address: add the account again with one."), None).await
            }
            Some(role) => {
                account.role = role;
                format!("role {}", role.as_str())
            }
            None => return page(&state, &viewer, StatusCode::UNPROCESSABLE_ENTITY, None, Some("Choose a role: admin, editor, viewer or owner."), None).await,
        },
        Some("disable") => {
            account.disabled = true;
            account.generation += 1;
            "disabled".to_owned()
        }
        Some("enable") => {
            account.disabled = false;
            "enabled".to_owned()
        }
        Some("end_sessions") => {
            account.generation += 1;
            "sessions ended".to_owned()
        }
        _ => return page(&state, &viewer, StatusCode::UNPROCESSABLE_ENTITY, None, Some("Choose what to change."), None).await,
    };
    // Somebody must still be able to manage accounts afterwards.
    let others = match store.accounts().await {
        Ok(all) => all.into_iter().filter(|a| a.name != account.name && a.role == Role::Admin && !a.disabled).count(),
        Err(e) => return store_failed(e, &viewer),
    };
    if others == 0 && (account.role != Role::Admin || account.disabled) {
        return page(&state, &viewer, StatusCode::CONFLICT, None, Some("This is the last active admin: make someone else an admin first."), None).await;
    }
    match store.put_account(&account).await {
        Ok(true) => {
            audit_or_log(&state, &admin.name, &client, AuditAction::AccountChanged, &format!("{}: {what}", account.name)).await;
            let notice = format!("{}: {what}.", account.name);
            page(&state, &viewer, StatusCode::OK, Some(&notice), None, None).await
        }
        Ok(false) => page(&state, &viewer, StatusCode::CONFLICT, None, Some("Someone changed this account meanwhile: look again and repeat the change."), None).await,
        Err(e) => store_failed(e, &viewer),
    }
}
