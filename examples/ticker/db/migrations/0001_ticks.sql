-- Price ticks, as POST /ticks receives them.
CREATE TABLE ticks (
    id       bigserial PRIMARY KEY,
    symbol   text NOT NULL,
    price    double precision NOT NULL CHECK (price > 0),
    time     timestamptz NOT NULL,
    received timestamptz NOT NULL DEFAULT now()
);
