use std::path::PathBuf;

use clap::{Parser, Subcommand};
use closeloop::settings::{Settings, DEFAULT_PORT};
use closeloop::commands;

/// closeloop: transactional NPS surveys with a closed loop, on one machine.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Where the embedded database lives.
    #[arg(long, global = true, env = "CLOSELOOP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The address respondents reach the survey at (default http://127.0.0.1:PORT).
    #[arg(long, global = true, env = "CLOSELOOP_PUBLIC_URL")]
    public_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve survey pages, the API and the outbox; send and remind in the background.
    Up {
        #[arg(long, default_value_t = DEFAULT_PORT)]
        port: u16,
        /// Launch the sample campaign from demo/ on first start.
        #[arg(long)]
        demo: bool,
    },
    /// Launch a campaign: invite every contact in a CSV or .xlsx file.
    Launch {
        #[arg(long)]
        campaign: PathBuf,
        /// CSV (UTF-8, Windows-1252 or UTF-16; comma, semicolon or tab) or an .xlsx workbook.
        #[arg(long)]
        contacts: PathBuf,
        /// Which column fills which field, over the suggestions and the campaign's [columns]:
        /// "Company Name=company". Repeat for more columns; "=custom" keeps a column as it is.
        #[arg(long = "map", value_name = "HEADER=FIELD")]
        map: Vec<String>,
        /// The sheet of an .xlsx workbook (default: the first).
        #[arg(long)]
        sheet: Option<String>,
        /// Check everything and report what a launch would do; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print the report as JSON.
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Run the scheduled work (reminders, overdue follow-ups) as of a moment.
    RunSchedule {
        /// RFC 3339, e.g. 2026-11-30T09:00:00Z
        #[arg(long)]
        at: String,
    },
    /// Dashboard accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// One person's data (GDPR): everything held about them, or erase it.
    Person {
        #[command(subcommand)]
        command: PersonCommand,
    },
    /// Sent, answered, response rate, NPS with its margin: overall and per segment.
    Report {
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Whom a person command is about: one of the two.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct PersonArgs {
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    phone: Option<String>,
}

#[derive(Subcommand)]
enum PersonCommand {
    /// Print, as JSON, everything held about the person across campaigns (Art. 15).
    Export {
        #[command(flatten)]
        person: PersonArgs,
    },
    /// Erase the person's personal data everywhere (Art. 17); counts and scores stay, anonymous.
    Erase {
        #[command(flatten)]
        person: PersonArgs,
        /// Required: erasure cannot be undone. Without it, says what would be erased.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Add an account and print its sign-in token (stored only as a hash).
    Add {
        #[arg(long)]
        name: String,
        /// admin (everything), editor (read everything, run campaigns), viewer (read everything) or owner (own contacts, own cases)
        #[arg(long)]
        role: String,
        /// For owners: the owner_email their contacts carry. For admins: where digests go.
        #[arg(long)]
        email: Option<String>,
        /// The language of this person's weekly digest: en, sv or da.
        #[arg(long)]
        locale: Option<String>,
        /// This person's own clock (an IANA zone such as Europe/Oslo) for the dashboard and their
        /// digests, over each campaign's time zone.
        #[arg(long)]
        time_zone: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let port = match cli.command {
        Command::Up { port, .. } => port,
        _ => DEFAULT_PORT,
    };
    let settings = Settings::new(cli.data_dir, cli.public_url, port);
    match cli.command {
        Command::Up { port, demo } => commands::cmd_up(&settings, port, demo).await,
        Command::Launch { campaign, contacts, map, sheet, dry_run, json } => {
            let options = commands::LaunchOptions { map, sheet, dry_run, json };
            commands::cmd_launch(&settings, &campaign, &contacts, &options).await
        }
        Command::RunSchedule { at } => commands::cmd_run_schedule(&settings, &at).await.map(|_| ()),
        Command::Account { command: AccountCommand::Add { name, role, email, locale, time_zone } } => {
            commands::cmd_account_add(&settings, &name, &role, email.as_deref(), locale.as_deref(), time_zone.as_deref()).map(|_| ())
        }
        Command::Report { campaign, json } => commands::cmd_report(&settings, campaign.as_deref(), json).await,
        Command::Person { command: PersonCommand::Export { person } } => {
            commands::cmd_person_export(&settings, person.email.as_deref(), person.phone.as_deref()).await
        }
        Command::Person { command: PersonCommand::Erase { person, yes } } => {
            commands::cmd_person_erase(&settings, person.email.as_deref(), person.phone.as_deref(), yes).await
        }
    }
}
