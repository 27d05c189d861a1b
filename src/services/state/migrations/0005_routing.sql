-- Routing across hosts. Each change of a pool a coordinator sends to the hosts a balancer lives
-- on carries a generation, one more than the last of that pool. On the coordinator this is the
-- last generation issued for a `remote` balancer's pool; on a host, the last one applied to its
-- own balancer's pool. A host refuses a change older than the one it applied, so a delayed or
-- replayed change can never put back nodes that were taken out.
CREATE TABLE pool_generations (
    balancer    TEXT NOT NULL,
    pool        TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    PRIMARY KEY (balancer, pool)
) STRICT;
