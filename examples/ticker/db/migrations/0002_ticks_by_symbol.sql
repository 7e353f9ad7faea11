-- GET /ticks/{symbol} and GET /price/{symbol}: a symbol's ticks, newest first.
CREATE INDEX ticks_by_symbol_time ON ticks (symbol, time DESC, id DESC);
