-- The reference app's accounts: its own tables, beside Shoebox's shoebox_ ones. A database made
-- before Shoebox's tables took their prefix already has these three, with its accounts in them:
-- every statement is "if not exists", so they are kept as they are.
--
-- Times are bigint milliseconds since the Unix epoch and ids are text (uuids), as in Shoebox's
-- tables, so one file serves Postgres and SQLite.

create table if not exists users (
    user_id       text primary key,
    -- lowercased by the application, so the unique constraint means one account per person
    email         text not null,
    password_hash text not null,
    created_at    bigint not null,
    constraint users_email_key unique (email)
);

create table if not exists sessions (
    -- sha-256 of the cookie's token: a leaked table cannot be replayed as cookies
    token_hash text primary key,
    user_id    text not null references users (user_id) on delete cascade,
    csrf_token text not null,
    created_at bigint not null,
    expires_at bigint not null
);
create index if not exists sessions_user_id_idx on sessions (user_id);

-- Login and sign-up attempts, counted per client address and per account so the limits hold
-- across every process sharing the database. A row counts against a limit until expires_at;
-- expired rows are deleted as new ones are written, so the table stays small.
create table if not exists auth_attempts (
    attempt_id text primary key,
    scope      text not null
        constraint auth_attempts_scope_check
        check (scope in ('login_address', 'login_account', 'signup_address', 'signup_account')),
    -- the client address, or the SHA-256 of the lowercased email (addresses of accounts that may
    -- not exist are not kept in clear)
    subject    text not null,
    created_at bigint not null,
    expires_at bigint not null
);
create index if not exists auth_attempts_subject_idx on auth_attempts (scope, subject, created_at);
create index if not exists auth_attempts_expires_idx on auth_attempts (expires_at);
