-- Named tokens (seed 001) can be deleted: the row stays (its revocation must hold) but
-- the id answers 404 from then on, and its description is free again for that user.
ALTER TABLE tokens ADD COLUMN deleted_at REAL;

CREATE UNIQUE INDEX tokens_api_description ON tokens (user_id, description)
    WHERE kind = 'api' AND deleted_at IS NULL;
