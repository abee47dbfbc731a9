-- Clean-up claims and the job lock.
--
-- A runner that is about to delete a photo first claims its row: `claimed_by` names the claim
-- and `claimed_until` is when another runner may take the claim over (the first one died).
-- A claimed row is doomed: attach refuses it (`claimed_by is null` is part of its condition),
-- so no photo is attached while its objects are being deleted.
alter table photos add column claimed_by text;
alter table photos add column claimed_until bigint;

-- the keep-until scan of in-use photos
create index photos_state_keep_until_idx on photos (state, keep_until);

-- One row per job that must run on one machine at a time (`serve`'s interval clean-up, to come): the
-- holder takes it with a conditional update and holds it until `held_until`.
create table job_locks (
    name       text primary key,
    holder     text not null,
    held_until bigint not null
);
