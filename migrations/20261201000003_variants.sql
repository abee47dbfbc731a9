-- Variants: the smaller renditions of a photo (thumb, display, ...), one row per photo, name and
-- recipe. The row is written before the work starts ('making'), so the uniqueness constraint is
-- the claim: of two requests, dynos or resize-all runs wanting the same variant, one makes it.
create table variants (
    photo_id    text not null references photos (photo_id) on delete cascade,
    name        text not null,
    -- a short hash of what the variant is made with (box, quality, engine revision): a changed
    -- recipe is a new row and a new object, never an overwrite of a cached one
    recipe_hash text not null,
    state       text not null
        constraint variants_state_check check (state in ('making', 'ready', 'failed')),
    object_key  text,
    image_type  text,
    width       bigint,
    height      bigint,
    byte_size   bigint,
    -- when the current claim was taken: a claim older than a few minutes belongs to a process
    -- that died, and may be taken over
    claimed_at  bigint not null,
    made_at     bigint,
    -- why it could not be made, so resize-all does not retry a bad image forever
    failure     text,
    constraint variants_photo_name_recipe_key unique (photo_id, name, recipe_hash),
    constraint variants_ready_check
        check (state <> 'ready' or (object_key is not null and image_type is not null and made_at is not null))
);
