-- Login and sign-up attempts, counted per client address and per account so the limits hold
-- across every process sharing the database (as the upload-form limit counts photo rows).
--
-- A row is one attempt that counts against a limit until `expires_at`; expired rows are deleted
-- opportunistically when new ones are written, so the table stays small.
create table auth_attempts (
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
create index auth_attempts_subject_idx on auth_attempts (scope, subject, created_at);
create index auth_attempts_expires_idx on auth_attempts (expires_at);
