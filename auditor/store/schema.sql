-- The snapshot store: a public interface, documented column by column in docs/schema.md.
-- Every resource row carries snapshot_id. Times are UTC (TIMESTAMP without time zone).
-- The latest_* views: auditor/store/tables.py (latest_views_sql).
-- `raw` holds the API record as returned, less secrets (adminPass, user_data, credential-like metadata).

CREATE SEQUENCE IF NOT EXISTS snapshot_id_seq START 1;

CREATE TABLE IF NOT EXISTS schema_info (
    key VARCHAR PRIMARY KEY,
    value VARCHAR
);

CREATE TABLE IF NOT EXISTS snapshots (
    id BIGINT PRIMARY KEY,
    cloud VARCHAR NOT NULL,
    region VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,                -- 'cloud' (admin, all projects) or 'projects' (only scope_project_ids)
    scope_project_ids VARCHAR[],
    auth_user_id VARCHAR,
    auth_project_id VARCHAR,
    compute_microversion VARCHAR,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('complete', 'partial', 'failed')),
    tool_version VARCHAR NOT NULL,
    project_count BIGINT,
    server_count BIGINT,
    flavor_count BIGINT,
    availability_zone_count BIGINT,
    server_group_count BIGINT,
    image_count BIGINT,
    security_group_count BIGINT,
    security_group_rule_count BIGINT,
    port_count BIGINT,
    floating_ip_count BIGINT,
    network_count BIGINT,                  -- these four: NULL in snapshots of auditor before 0.2.0
    subnet_count BIGINT,
    router_count BIGINT,
    address_group_count BIGINT,
    user_count BIGINT,                     -- these four: NULL when not collected (a project-scoped snapshot)
    role_count BIGINT,
    role_assignment_count BIGINT,
    application_credential_count BIGINT,
    volume_count BIGINT,                   -- these six: NULL before 0.2.0; encryption and access NULL when
    volume_snapshot_count BIGINT,          -- not collected (a project-scoped snapshot)
    volume_backup_count BIGINT,
    volume_type_count BIGINT,
    volume_type_encryption_count BIGINT,
    volume_type_access_count BIGINT,
    container_count BIGINT,
    image_member_count BIGINT,             -- NULL before 0.2.0
    error_count BIGINT,
    request_count BIGINT
);

CREATE TABLE IF NOT EXISTS snapshot_resources (
    snapshot_id BIGINT NOT NULL,
    resource_type VARCHAR NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('complete', 'partial', 'failed')),
    row_count BIGINT NOT NULL,
    request_count BIGINT NOT NULL,
    seconds DOUBLE NOT NULL,
    PRIMARY KEY (snapshot_id, resource_type)
);

CREATE TABLE IF NOT EXISTS collection_errors (
    snapshot_id BIGINT NOT NULL,
    resource_type VARCHAR NOT NULL,
    project_id VARCHAR,
    http_status INTEGER,
    url VARCHAR,
    message VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS projects (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    domain_id VARCHAR,
    parent_id VARCHAR,
    enabled BOOLEAN,
    is_domain BOOLEAN,
    description VARCHAR,
    tags VARCHAR[],
    raw JSON
);

CREATE TABLE IF NOT EXISTS servers (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    user_id VARCHAR,
    status VARCHAR,
    vm_state VARCHAR,
    task_state VARCHAR,
    power_state INTEGER,
    availability_zone VARCHAR,
    pinned_availability_zone VARCHAR,
    host VARCHAR,
    hypervisor_hostname VARCHAR,
    host_id VARCHAR,
    flavor_id VARCHAR,
    flavor_name VARCHAR,
    flavor_vcpus INTEGER,
    flavor_ram_mb BIGINT,
    flavor_disk_gb BIGINT,
    flavor_ephemeral_gb BIGINT,
    flavor_swap_mb BIGINT,
    flavor_extra_specs JSON,
    image_id VARCHAR,
    boot_from_volume BOOLEAN,
    volumes_attached VARCHAR[],
    key_name VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    launched_at TIMESTAMP,
    addresses JSON,
    access_ipv4 VARCHAR,
    access_ipv6 VARCHAR,
    metadata JSON,
    security_group_names VARCHAR[],
    server_groups VARCHAR[],
    tags VARCHAR[],
    locked BOOLEAN,
    locked_reason VARCHAR,
    trusted_image_certificates VARCHAR[],
    description VARCHAR,
    config_drive VARCHAR,
    fault_code INTEGER,
    fault_message VARCHAR,
    fault_created_at TIMESTAMP,
    down_cell BOOLEAN,
    raw JSON
);

CREATE TABLE IF NOT EXISTS flavors (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    vcpus INTEGER,
    ram_mb BIGINT,
    disk_gb BIGINT,
    ephemeral_gb BIGINT,
    swap_mb BIGINT,
    is_public BOOLEAN,
    disabled BOOLEAN,
    rxtx_factor DOUBLE,
    description VARCHAR,
    extra_specs JSON,
    raw JSON
);

CREATE TABLE IF NOT EXISTS availability_zones (
    snapshot_id BIGINT NOT NULL,
    name VARCHAR,
    available BOOLEAN,
    compute_hosts VARCHAR[],
    compute_hosts_down VARCHAR[],
    hosts JSON,
    raw JSON
);

CREATE TABLE IF NOT EXISTS server_groups (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    user_id VARCHAR,
    policy VARCHAR,
    rules JSON,
    members VARCHAR[],
    raw JSON
);

CREATE TABLE IF NOT EXISTS images (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    status VARCHAR,
    visibility VARCHAR,
    project_id VARCHAR,
    os_hidden BOOLEAN,
    protected BOOLEAN,
    disk_format VARCHAR,
    container_format VARCHAR,
    size_bytes BIGINT,
    virtual_size_bytes BIGINT,
    min_disk_gb BIGINT,
    min_ram_mb BIGINT,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    tags VARCHAR[],
    properties JSON,
    raw JSON
);

CREATE TABLE IF NOT EXISTS image_members (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,                            -- <image id>/<member id>
    image_id VARCHAR,                      -- a shared image
    member_id VARCHAR,                     -- a project it is shared with
    status VARCHAR,                        -- pending, accepted or rejected (the member's answer)
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS security_groups (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    description VARCHAR,
    stateful BOOLEAN,
    shared BOOLEAN,
    rule_count INTEGER,
    tags VARCHAR[],
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS security_group_rules (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    security_group_id VARCHAR,
    project_id VARCHAR,
    direction VARCHAR,
    ethertype VARCHAR,
    protocol VARCHAR,
    protocol_name VARCHAR,
    port_range_min INTEGER,
    port_range_max INTEGER,
    remote_ip_prefix VARCHAR,
    remote_group_id VARCHAR,
    remote_address_group_id VARCHAR,
    description VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS ports (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    description VARCHAR,
    network_id VARCHAR,
    device_id VARCHAR,
    device_owner VARCHAR,
    status VARCHAR,
    admin_state_up BOOLEAN,
    mac_address VARCHAR,
    fixed_ips JSON,
    ip_addresses VARCHAR[],
    security_group_ids VARCHAR[],
    port_security_enabled BOOLEAN,
    binding_host_id VARCHAR,
    binding_vnic_type VARCHAR,
    allowed_address_pairs JSON,
    tags VARCHAR[],
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS server_security_groups (
    snapshot_id BIGINT NOT NULL,
    server_id VARCHAR,
    port_id VARCHAR,
    security_group_id VARCHAR
);

CREATE TABLE IF NOT EXISTS floating_ips (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    project_id VARCHAR,
    floating_ip_address VARCHAR,
    floating_network_id VARCHAR,
    fixed_ip_address VARCHAR,
    port_id VARCHAR,
    server_id VARCHAR,
    router_id VARCHAR,
    status VARCHAR,
    description VARCHAR,
    tags VARCHAR[],
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS networks (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    description VARCHAR,
    status VARCHAR,
    admin_state_up BOOLEAN,
    shared BOOLEAN,
    external BOOLEAN,                      -- router:external
    is_default BOOLEAN,
    provider_network_type VARCHAR,         -- provider:* attributes: admins only; multi-segment in `segments`
    provider_physical_network VARCHAR,
    provider_segmentation_id BIGINT,
    segments JSON,
    mtu INTEGER,
    port_security_enabled BOOLEAN,
    subnet_ids VARCHAR[],
    availability_zones VARCHAR[],
    tags VARCHAR[],
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS subnets (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    description VARCHAR,
    network_id VARCHAR,
    ip_version INTEGER,
    cidr VARCHAR,
    gateway_ip VARCHAR,
    enable_dhcp BOOLEAN,
    allocation_pools JSON,
    dns_nameservers VARCHAR[],
    host_routes JSON,
    ipv6_address_mode VARCHAR,
    ipv6_ra_mode VARCHAR,
    subnetpool_id VARCHAR,
    segment_id VARCHAR,
    tags VARCHAR[],
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS routers (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    description VARCHAR,
    status VARCHAR,
    admin_state_up BOOLEAN,
    external_network_id VARCHAR,           -- external_gateway_info.network_id; NULL: no gateway
    enable_snat BOOLEAN,
    external_fixed_ips JSON,
    external_ip_addresses VARCHAR[],
    distributed BOOLEAN,
    ha BOOLEAN,
    routes JSON,
    availability_zones VARCHAR[],
    tags VARCHAR[],
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS address_groups (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    description VARCHAR,
    addresses VARCHAR[],                   -- CIDRs, as Neutron normalizes them (a host as /32 or /128)
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

-- Keystone (cloud-scope snapshots only): users, roles, effective role assignments, application credentials.
CREATE TABLE IF NOT EXISTS users (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    domain_id VARCHAR,
    enabled BOOLEAN,
    default_project_id VARCHAR,
    password_expires_at TIMESTAMP,         -- NULL: the password never expires (or the user has none)
    description VARCHAR,
    mfa_enabled BOOLEAN,                   -- options.multi_factor_auth_enabled
    mfa_rules VARCHAR[][],                 -- options.multi_factor_auth_rules: each a list of auth methods
    ignore_password_expiry BOOLEAN,
    ignore_change_password_upon_first_use BOOLEAN,
    ignore_lockout_failure_attempts BOOLEAN,
    ignore_user_inactivity BOOLEAN,
    lock_password BOOLEAN,
    options JSON,
    federated JSON,
    raw JSON
);

CREATE TABLE IF NOT EXISTS roles (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    domain_id VARCHAR,                     -- NULL for a global role
    description VARCHAR,
    immutable BOOLEAN,
    raw JSON
);

CREATE TABLE IF NOT EXISTS role_assignments (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,                            -- made by the auditor: <scope>/users/<user id>/roles/<role id>
    role_id VARCHAR,
    role_name VARCHAR,
    role_domain_id VARCHAR,
    user_id VARCHAR,
    user_name VARCHAR,
    user_domain_id VARCHAR,
    group_id VARCHAR,
    group_name VARCHAR,
    scope_type VARCHAR,                    -- 'project', 'domain' or 'system'
    project_id VARCHAR,
    project_name VARCHAR,
    domain_id VARCHAR,
    domain_name VARCHAR,
    inherited_to VARCHAR,
    raw JSON
);

CREATE TABLE IF NOT EXISTS application_credentials (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    user_id VARCHAR,                       -- the user whose credentials were listed
    project_id VARCHAR,
    description VARCHAR,
    unrestricted BOOLEAN,
    expires_at TIMESTAMP,                  -- NULL: never expires
    system VARCHAR,
    role_names VARCHAR[],
    role_ids VARCHAR[],
    access_rules JSON,
    raw JSON                               -- never the secret
);

-- Cinder v3 block storage.
CREATE TABLE IF NOT EXISTS volumes (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    user_id VARCHAR,
    status VARCHAR,                        -- available, in-use, error, ...
    size_gb BIGINT,
    availability_zone VARCHAR,
    volume_type VARCHAR,                   -- the type's name
    volume_type_id VARCHAR,
    bootable BOOLEAN,                      -- Cinder says "true"/"false" as strings
    encrypted BOOLEAN,                     -- the volume's own flag: its type had encryption when it was made
    multiattach BOOLEAN,
    attached_server_ids VARCHAR[],         -- from attachments
    attachments JSON,
    metadata JSON,                         -- credential-like values masked
    image_metadata JSON,                   -- volume_image_metadata: the image it was made from
    snapshot_source_id VARCHAR,            -- the snapshot it was made from
    source_volume_id VARCHAR,
    backend_host VARCHAR,                  -- os-vol-host-attr:host (admins only)
    migration_status VARCHAR,
    replication_status VARCHAR,
    group_id VARCHAR,
    description VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS volume_snapshots (
    snapshot_id BIGINT NOT NULL,           -- the auditor snapshot; `id` is Cinder's snapshot
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    user_id VARCHAR,
    volume_id VARCHAR,
    status VARCHAR,
    size_gb BIGINT,
    progress VARCHAR,
    metadata JSON,                         -- credential-like values masked
    group_snapshot_id VARCHAR,
    description VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS volume_backups (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    project_id VARCHAR,
    user_id VARCHAR,
    volume_id VARCHAR,
    volume_snapshot_id VARCHAR,            -- the Cinder snapshot it was taken from, if any
    status VARCHAR,
    size_gb BIGINT,
    is_incremental BOOLEAN,
    has_dependent_backups BOOLEAN,
    availability_zone VARCHAR,
    container VARCHAR,
    object_count BIGINT,
    metadata JSON,                         -- credential-like values masked
    fail_reason VARCHAR,
    description VARCHAR,
    data_timestamp TIMESTAMP,              -- the point in time the backup holds
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    raw JSON
);

CREATE TABLE IF NOT EXISTS volume_types (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,
    name VARCHAR,
    description VARCHAR,
    is_public BOOLEAN,
    extra_specs JSON,                      -- admins see all; credential-like values masked
    qos_specs_id VARCHAR,
    raw JSON
);

CREATE TABLE IF NOT EXISTS volume_type_encryption (
    snapshot_id BIGINT NOT NULL,
    volume_type_id VARCHAR,                -- one row per encrypted type; a type without a row has none
    encryption_id VARCHAR,
    provider VARCHAR,                      -- luks, plain, or a class path
    cipher VARCHAR,
    key_size INTEGER,
    control_location VARCHAR,              -- front-end (Nova) or back-end
    raw JSON
);

CREATE TABLE IF NOT EXISTS volume_type_access (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,                            -- <volume type id>/<project id>
    volume_type_id VARCHAR,                -- a private type
    project_id VARCHAR,                    -- a project allowed to use it
    raw JSON
);

-- Rule evaluations (issue 3). One evaluation judges one snapshot with every enabled rule.
CREATE SEQUENCE IF NOT EXISTS evaluation_id_seq START 1;

CREATE TABLE IF NOT EXISTS evaluations (
    id BIGINT PRIMARY KEY,
    snapshot_id BIGINT NOT NULL,
    cloud VARCHAR NOT NULL,
    region VARCHAR NOT NULL,
    previous_evaluation_id BIGINT,         -- the diff base: newest evaluation of the previous evaluated snapshot
    previous_snapshot_id BIGINT,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    rules_version VARCHAR NOT NULL,        -- digest of rule files, parameters, instance types and waivers
    tool_version VARCHAR NOT NULL,
    rule_count INTEGER NOT NULL,
    rule_error_count INTEGER NOT NULL,
    rule_incomplete_count INTEGER NOT NULL,
    fail_count BIGINT NOT NULL,            -- failing, not waived
    waived_count BIGINT NOT NULL,
    new_count BIGINT NOT NULL,
    resolved_count BIGINT NOT NULL,
    pass_count BIGINT NOT NULL,
    skip_count BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS evaluation_rules (
    evaluation_id BIGINT NOT NULL,
    rule_id VARCHAR NOT NULL,
    title VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    resource_type VARCHAR NOT NULL,
    pack VARCHAR NOT NULL,
    description VARCHAR,
    rationale VARCHAR,
    remediation VARCHAR,
    params JSON,
    frameworks JSON,
    outcome VARCHAR NOT NULL CHECK (outcome IN ('ran', 'incomplete', 'error')),
    missing_inputs VARCHAR[],
    message VARCHAR,
    seconds DOUBLE NOT NULL,
    pass_count BIGINT NOT NULL,
    fail_count BIGINT NOT NULL,
    skip_count BIGINT NOT NULL,
    info_count BIGINT NOT NULL,
    PRIMARY KEY (evaluation_id, rule_id)
);

CREATE TABLE IF NOT EXISTS findings (
    evaluation_id BIGINT NOT NULL,
    snapshot_id BIGINT NOT NULL,
    rule_id VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    resource_type VARCHAR NOT NULL,
    resource_id VARCHAR,                   -- NULL on a rule-level row (an error, or data missing for the rule)
    resource_name VARCHAR,
    project_id VARCHAR,
    status VARCHAR NOT NULL CHECK (status IN ('pass', 'fail', 'skip', 'info', 'error')),
    reason VARCHAR,
    waived BOOLEAN NOT NULL,
    waiver_id VARCHAR,
    first_seen_at TIMESTAMP,
    is_new BOOLEAN NOT NULL,
    evidence JSON                          -- what the rule found, as its metadata's `evidence` keys say
);

CREATE TABLE IF NOT EXISTS resolved_findings (
    evaluation_id BIGINT NOT NULL,
    snapshot_id BIGINT NOT NULL,
    previous_evaluation_id BIGINT NOT NULL,
    rule_id VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    resource_type VARCHAR NOT NULL,
    resource_id VARCHAR NOT NULL,
    resource_name VARCHAR,
    project_id VARCHAR,
    first_seen_at TIMESTAMP,
    resolution VARCHAR NOT NULL CHECK (resolution IN ('passed', 'gone'))
);

CREATE TABLE IF NOT EXISTS evaluation_instance_types (
    evaluation_id BIGINT NOT NULL,
    name VARCHAR NOT NULL,                 -- the approved instance type, as [rules].instance_types names it
    description VARCHAR,
    vcpus INTEGER,
    ram_mb BIGINT,
    disk_gb BIGINT,
    flavor_names VARCHAR[]                 -- flavors mapped to it by name
);

CREATE TABLE IF NOT EXISTS evaluation_waivers (
    evaluation_id BIGINT NOT NULL,
    waiver_id VARCHAR NOT NULL,
    rule_id VARCHAR NOT NULL,
    match JSON NOT NULL,
    reason VARCHAR NOT NULL,
    owner VARCHAR NOT NULL,
    expires DATE NOT NULL,
    state VARCHAR NOT NULL CHECK (state IN ('active', 'expired', 'unmatched')),
    matched_count BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS containers (
    snapshot_id BIGINT NOT NULL,
    id VARCHAR,                            -- <project id>/<container name>
    project_id VARCHAR,                    -- the project whose account holds it
    name VARCHAR,
    object_count BIGINT,
    bytes_used BIGINT,
    last_modified TIMESTAMP,
    created_at TIMESTAMP,                  -- X-Timestamp
    storage_policy VARCHAR,
    read_acl VARCHAR,                      -- X-Container-Read: .r:* is anyone, .rlistings lets them list
    write_acl VARCHAR,                     -- X-Container-Write: *:* is any user of any project
    versions_location VARCHAR,             -- X-Versions-Location (legacy versioning): the archive container
    history_location VARCHAR,              -- X-History-Location (legacy versioning, history mode)
    versions_enabled BOOLEAN,              -- X-Versions-Enabled (object versioning)
    sync_to VARCHAR,                       -- X-Container-Sync-To
    sync_key_set BOOLEAN,                  -- a sync key is set (the key itself is never kept)
    temp_url_key_set BOOLEAN,              -- a temp-URL key is set (never kept)
    metadata JSON,                         -- X-Container-Meta-*, credential-like values masked
    raw JSON                               -- the listing entry and the headers above, as auditor reads them
);
