/*---
title: Tenant networks are not shared with every project
severity: medium
resource_type: network
description: >
  Fails a network that a tenant shares with every project: `shared` is true and its owner is not one of
  `operator_projects` (names in the default domain, or ids), or a tenant made its network external
  (router:external), which lets every project's routers use it as a gateway. The operators' shared and
  external networks pass. In a project-scoped snapshot Neutron also says `shared` for a grant to one of the
  scanned projects alone, so a tenant's shared network is skipped there, as is one whose owner is not in the
  snapshot (unless its id is listed in `operator_projects`). A tenant's grants to a few named projects are
  not judged here.
rationale: >
  A shared network lets every project in the cloud attach ports to it: any tenant can put a machine next
  to the owner's servers, reach services that listen only on the private network, and, where port
  security is off, answer DHCP or ARP for them. Tenants rarely mean to offer that; sharing a network with
  everyone is an operator's decision, made for provider networks.
remediation: >
  Stop sharing the network (`openstack network set --no-share NETWORK`, or `--internal` for one made
  external) and, if one partner project needs it, grant that project alone through RBAC
  (`openstack network rbac create --target-project PROJECT --action access_as_shared --type network NETWORK`).
params:
  operator_projects: [admin, service]
references:
  - https://docs.openstack.org/neutron/latest/admin/config-rbac.html
  - https://docs.openstack.org/api-ref/network/v2/#networks
---*/
WITH judged AS (
    SELECT n.id, n.name, n.project_id, n.shared, coalesce(n.external, false) AS external,
           p.id IS NOT NULL OR list_contains($operator_projects, n.project_id) AS owner_known,
           coalesce(p.name, n.project_id, 'unknown') AS owner,
           coalesce(list_contains($operator_projects, n.project_id)
                    OR (list_contains($operator_projects, p.name) AND p.domain_id = 'default'), false) AS operator,
           (SELECT scope FROM snapshot) = 'projects' AS project_scoped
    FROM networks n
    LEFT JOIN projects p ON p.id = n.project_id
)
SELECT id AS resource_id,
       name AS resource_name,
       project_id,
       CASE WHEN shared IS NULL AND NOT external THEN 'skip'
            WHEN operator OR NOT (coalesce(shared, false) OR external) THEN 'pass'
            WHEN NOT owner_known THEN 'skip'
            WHEN external THEN 'fail'
            WHEN project_scoped THEN 'skip'
            ELSE 'fail' END AS status,
       'Network ' || coalesce(name, '') || ' (' || id || ') of project ' || owner || ' ' ||
       CASE WHEN shared IS NULL AND NOT external THEN 'does not say whether it is shared.'
            WHEN operator THEN 'belongs to an operator project'
                               || CASE WHEN shared OR external THEN ', which may share it.' ELSE '.' END
            WHEN NOT (coalesce(shared, false) OR external) THEN 'is not shared.'
            WHEN NOT owner_known THEN 'is shared, and its owner is not in this snapshot, so whether a tenant '
                                      || 'shares it is unknown (list operator projects by id in operator_projects).'
            WHEN external THEN 'is external although a tenant owns it: every project''s routers may use it as a gateway.'
            WHEN project_scoped THEN 'is shared with every project or with one of the scanned projects: a '
                                     || 'project-scoped snapshot cannot tell which.'
            ELSE 'is shared with every project although a tenant owns it: any project can attach ports to it.'
       END AS reason
FROM judged
