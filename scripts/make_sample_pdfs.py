"""Generate the PDF guides of the sample corpus (data/sample_corpus/guides/*.pdf).

The text of every guide lives in this file, so the PDFs can be rebuilt at any time:

    .venv/bin/python scripts/make_sample_pdfs.py

Output is deterministic: the creation date is fixed and fpdf2 derives the file ID from the
content, so running the script twice produces byte-identical files. Only the PDF core fonts are
used, so all text must stay within Latin-1 (no curly quotes, no dashes other than "-").

The text is original, written for this project (Apache-2.0, like the rest of the repository).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "data" / "sample_corpus" / "guides"
FIXED_DATE = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)

# Each guide: file name, title, subject, and a list of blocks. A block is ("h", text) for a
# section heading, ("p", text) for a paragraph, or ("li", text) for a bullet item.
GUIDES: list[dict] = [
    {
        "file": "security-and-encryption-overview.pdf",
        "title": "Lumina Notes Security and Encryption Overview",
        "subject": "How Lumina Notes protects your notes in transit, at rest and in Vault notebooks",
        "blocks": [
            ("p", "This document describes how Lumina Labs protects the notes, attachments and account "
                  "information that you store in Lumina Notes. It is written for customers and for the "
                  "security teams that review Lumina Notes before it is used in their organisation."),
            ("h", "Encryption in transit"),
            ("p", "All connections between the Lumina apps and our servers use TLS 1.3. Older protocol "
                  "versions are refused. The desktop and mobile apps also pin the certificates of our "
                  "sync servers, so a network that intercepts traffic with its own certificate causes "
                  "the connection to fail instead of exposing your data."),
            ("h", "Encryption at rest"),
            ("p", "Notes, attachments and backups are encrypted on our servers with AES-256. Encryption "
                  "keys are held in a hardware security module and rotated every 90 days. Lumina staff "
                  "cannot read note content during normal operations; access for support is only granted "
                  "with your written permission and is recorded in the audit log."),
            ("h", "Vault notebooks"),
            ("p", "Customers on the Pro and Teams plans can create Vault notebooks, which are end-to-end "
                  "encrypted. Notes in a Vault are encrypted on your device with XChaCha20-Poly1305 before "
                  "they are uploaded, using a key derived from your Vault passphrase with Argon2id. "
                  "Lumina Labs never receives the passphrase or the key."),
            ("p", "A Vault passphrase must be at least 12 characters long. Because we cannot see it, we "
                  "cannot reset it either: if you forget the passphrase and have lost your recovery kit, "
                  "the notes in the Vault cannot be recovered by anyone."),
            ("p", "When you create your first Vault, the app offers a recovery kit: a PDF containing a "
                  "24-word recovery phrase. Print it or store it in a safe place. The recovery phrase "
                  "can unlock every Vault on your account and can be used to set a new passphrase."),
            ("p", "Some features are not available inside a Vault: notes in a Vault are not searchable "
                  "on the server, cannot be shared through public links and are not processed by text "
                  "recognition."),
            ("h", "Certifications and testing"),
            ("li", "Our hosting providers and our own operations are audited every year against SOC 2 "
                   "Type II."),
            ("li", "An independent firm performs a penetration test of the apps and the sync service "
                   "twice a year."),
            ("li", "Security researchers can report vulnerabilities through our bug bounty programme, "
                   "which pays rewards of up to 10,000 US dollars."),
            ("h", "Reporting a security problem"),
            ("p", "Send reports to security@luminanotes.example. We acknowledge every report within two "
                  "business days."),
        ],
    },
    {
        "file": "sso-setup-guide.pdf",
        "title": "Single Sign-On Setup Guide for Teams Administrators",
        "subject": "Configuring SAML single sign-on for a Lumina Notes Teams workspace",
        "blocks": [
            ("p", "Single sign-on (SSO) lets the members of a Teams workspace sign in to Lumina Notes "
                  "with the account they already use at work. Lumina Notes supports SAML 2.0 with any "
                  "compliant identity provider. Step-by-step instructions are available for Okta, "
                  "Microsoft Entra ID and Google Workspace."),
            ("h", "Before you begin"),
            ("li", "You need the Owner or Admin role in the workspace."),
            ("li", "Your workspace must be on the Teams plan. SSO is not available on Plus or Pro."),
            ("li", "You must verify at least one email domain that your members use."),
            ("h", "Step 1: Verify your domain"),
            ("p", "In the admin console, open Settings > Domains and click Add Domain. Lumina Notes shows "
                  "a TXT record that starts with lumina-verify= followed by a random code. Add this record "
                  "to the DNS settings of your domain. Verification usually completes within an hour, "
                  "but DNS changes can take up to two days to be visible everywhere."),
            ("h", "Step 2: Create the application in your identity provider"),
            ("p", "Create a new SAML application in your identity provider and enter the values shown on "
                  "the SSO page of the admin console: the Entity ID and the Assertion Consumer Service "
                  "URL. The name ID must be the member's email address. Optionally, send the attributes "
                  "firstName and lastName so that names are filled in automatically."),
            ("h", "Step 3: Upload the identity provider metadata"),
            ("p", "Download the metadata XML file from your identity provider and upload it on the SSO "
                  "page. Lumina Notes reads the sign-in URL and the signing certificate from the file. "
                  "Certificates must be renewed before they expire; the admin console warns owners and "
                  "admins by email 30 days before the expiry date."),
            ("h", "Step 4: Test and enforce"),
            ("p", "Click Test Connection and sign in with a test account. When the test succeeds, you can "
                  "choose between two modes. In Optional mode, members can sign in with SSO or with "
                  "their Lumina password. In Required mode, passwords are disabled for everyone with an "
                  "email address on a verified domain."),
            ("p", "The workspace owner can always sign in with a password, even in Required mode. This "
                  "break-glass access makes sure that a problem with the identity provider never locks "
                  "everyone out of the workspace."),
            ("h", "Session length"),
            ("p", "By default, a session created through SSO lasts 12 hours, after which members are "
                  "sent back to the identity provider. Admins can choose any session length between "
                  "one hour and 30 days in the SSO settings."),
        ],
    },
    {
        "file": "version-history-and-backups.pdf",
        "title": "Version History, Trash and Backups",
        "subject": "How Lumina Notes keeps earlier versions of notes and how to restore them",
        "blocks": [
            ("p", "Lumina Notes keeps several safety nets so that a mistake is rarely permanent: a "
                  "version history for every note, a Trash for deleted notes, and server-side backups "
                  "for disaster recovery."),
            ("h", "Version history"),
            ("p", "While you edit a note, the app saves a snapshot of it at most once every 10 minutes. "
                  "A snapshot is also saved whenever someone else starts editing a shared note. To see "
                  "earlier versions, open the note menu and choose Version History. Select a version "
                  "to preview it, then click Restore This Version to make it the current one. The version "
                  "you replace is kept in the history, so a restore can always be undone."),
            ("p", "How far back the history goes depends on your plan: 7 days on Free, 30 days on Plus, "
                  "and one year on Pro and Teams. Versions older than that are removed automatically."),
            ("h", "The Trash"),
            ("p", "Deleted notes and notebooks go to the Trash, where they stay until you empty it. "
                  "On Teams workspaces, admins can set the Trash to empty automatically after a period "
                  "between 30 and 365 days. To restore a note, open the Trash, right-click the note and "
                  "choose Put Back. If its original notebook no longer exists, the note is restored to "
                  "your Inbox."),
            ("p", "Emptying the Trash removes notes from all of your devices. After that, the note "
                  "cannot be restored from the app, and its version history is deleted with it."),
            ("h", "Server backups"),
            ("p", "In addition to version history, Lumina Labs backs up every account each night. Backups "
                  "are encrypted and copied to a second data centre in the same region. Each nightly "
                  "backup is kept for 35 days."),
            ("p", "Backups exist to recover from failures on our side, such as a storage fault. They are "
                  "not used to restore individual notes for customers, because version history and the "
                  "Trash already cover that. In exceptional cases, such as a note damaged by a bug in "
                  "the app, support can restore a single notebook from a backup on request."),
            ("h", "Restoring a whole notebook"),
            ("p", "If many notes in a notebook were changed by mistake, for example by a faulty import, "
                  "open the notebook menu and choose Roll Back Notebook. Pick a point in time and the app "
                  "restores every note in the notebook to the version it had then. Roll back is "
                  "available on the Pro and Teams plans."),
        ],
    },
    {
        "file": "exporting-your-data.pdf",
        "title": "Exporting Your Data from Lumina Notes",
        "subject": "Export formats and how to download a complete copy of your account",
        "blocks": [
            ("p", "Your notes belong to you. Lumina Notes lets you export single notes, whole notebooks "
                  "or your complete account at any time, on every plan, including Free."),
            ("h", "Exporting notes and notebooks"),
            ("p", "Select one or more notes, or right-click a notebook, and choose Export. The following "
                  "formats are available:"),
            ("li", "Markdown: one .md file per note, with attachments in a folder next to it, packed "
                   "in a ZIP archive."),
            ("li", "PDF: one PDF per note, or a single combined PDF for a notebook."),
            ("li", "HTML: a folder of web pages that you can open in any browser."),
            ("li", "Lumina Archive (.lnx): a complete copy that keeps tags, properties, version history "
                   "and note links. This is the only format that can be imported back into Lumina Notes "
                   "without losing anything."),
            ("li", "JSON: a machine-readable file for developers, with one object per note."),
            ("h", "Exporting your whole account"),
            ("p", "Open Account > Data > Export Everything on the web app or the desktop app. Choose a "
                  "format and click Start Export. Exports of large accounts are prepared on our servers "
                  "and can take several hours. When the export is ready, we send you an email with a "
                  "download link. The download link expires after 72 hours, and you can request a new "
                  "export at most once per day."),
            ("p", "Account exports larger than 4 GB are split into several ZIP files, numbered part 1, "
                  "part 2 and so on. Download all parts before extracting them."),
            ("h", "What is not included"),
            ("li", "Comments from other people are included only in the Lumina Archive format."),
            ("li", "Notes in Vault notebooks are exported in encrypted form unless you unlock the Vault "
                   "before starting the export."),
            ("li", "Notes that other people share with you are not part of your account export. Ask "
                   "the owner to export them."),
            ("h", "Automatic exports"),
            ("p", "On the Pro and Teams plans you can schedule an automatic export every week. Open "
                  "Account > Data > Scheduled Export, choose a day, a format and a destination folder on "
                  "your computer. The desktop app must be running at the scheduled time."),
        ],
    },
    {
        "file": "developer-api-guide.pdf",
        "title": "Lumina Notes REST API: Getting Started",
        "subject": "Authentication, limits, pagination and webhooks of the Lumina Notes API",
        "blocks": [
            ("p", "The Lumina Notes REST API lets you read and write notes, notebooks and tags from your "
                  "own scripts and applications. It is available on every plan. Requests and responses "
                  "use JSON, and all requests must use HTTPS."),
            ("h", "Authentication"),
            ("p", "Create a personal access token under Settings > Developer > Access Tokens. A token "
                  "can be limited to read-only access or to particular notebooks. Send it in the "
                  "Authorization header of every request, prefixed with the word Bearer. Tokens do not "
                  "expire by default, but you can set an expiry date when you create one. Applications "
                  "used by other people should use OAuth 2.0 instead of personal tokens."),
            ("h", "Base address and versions"),
            ("p", "The current version of the API is version 2, and every path starts with /v2. Version 1 "
                  "was retired on 31 January 2024 and now answers every request with HTTP 410 Gone."),
            ("h", "Rate limits"),
            ("p", "Each token may send up to 120 requests per minute. Requests above the limit receive "
                  "HTTP status 429 with a Retry-After header that says how many seconds to wait. Uploads "
                  "of attachments count against the monthly upload allowance of the account in the same "
                  "way as uploads from the apps."),
            ("h", "Pagination"),
            ("p", "List endpoints, such as GET /v2/notes, return results in pages. Use the limit "
                  "parameter to choose the page size, from 1 to 100, with a default of 25. Each response "
                  "contains a next_cursor value; pass it as the cursor parameter to fetch the next page. "
                  "When next_cursor is null, there are no more results."),
            ("h", "Webhooks"),
            ("p", "Webhooks notify your application when notes are created, changed or deleted. Register "
                  "a webhook with POST /v2/webhooks and an HTTPS address. Every delivery is signed with "
                  "an HMAC-SHA256 signature in the X-Lumina-Signature header. If your endpoint does not "
                  "answer with a 2xx status within 10 seconds, the delivery is retried five times with "
                  "exponential backoff, and the webhook is disabled after 3 days of failed deliveries."),
            ("h", "Errors"),
            ("p", "Errors are returned with a JSON body that contains a code and a message, for example "
                  "{\"code\": \"note_not_found\", \"message\": \"No note with this id.\"}. Codes are "
                  "stable and can be used in your code; messages may change."),
        ],
    },
]


class GuidePDF(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self._guide_title = title

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 6, self._guide_title, align="R")
        self.ln(10)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"Lumina Labs - Page {self.page_no()}", align="C")


def build_guide(guide: dict, out_dir: Path) -> Path:
    pdf = GuidePDF(guide["title"])
    pdf.set_title(guide["title"])
    pdf.set_subject(guide["subject"])
    pdf.set_author("Lumina Labs Documentation Team")
    pdf.set_creator("scripts/make_sample_pdfs.py")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_margins(left=20, top=20, right=20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 9, guide["title"])
    pdf.ln(4)

    for kind, text in guide["blocks"]:
        text.encode("latin-1")  # fail early on characters the core fonts cannot show
        if kind == "h":
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 13)
            pdf.multi_cell(0, 7, text)
            pdf.ln(1)
        elif kind == "p":
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 6, text)
            pdf.ln(2)
        elif kind == "li":
            pdf.set_font("Helvetica", "", 11)
            pdf.set_x(pdf.l_margin + 4)
            pdf.multi_cell(0, 6, "- " + text)
            pdf.ln(1)
        else:
            raise ValueError(f"unknown block kind {kind!r}")

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / guide["file"]
    pdf.output(str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help=f"where to write the PDFs (default: {DEFAULT_OUT_DIR})")
    args = parser.parse_args(argv)
    for guide in GUIDES:
        path = build_guide(guide, args.out_dir)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
