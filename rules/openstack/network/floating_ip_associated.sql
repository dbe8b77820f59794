/*---
title: Floating IPs are associated with a port
severity: low
resource_type: floating_ip
description: >
  Fails a floating IP that is allocated to a project but associated with no port.
rationale: >
  Public IPv4 addresses are scarce and often billed: an idle floating IP is waste. It is also a stale
  identity: DNS names, firewall allow-lists and partners may still point at the address, and whoever
  is given it next inherits that traffic and that trust.
remediation: >
  Associate the address with the port or server that needs it
  (`openstack server add floating ip SERVER ADDRESS` or `openstack floating ip set --port PORT ADDRESS`),
  or release it once no DNS record or allow-list refers to it: `openstack floating ip delete ADDRESS`.
references:
  - https://docs.openstack.org/api-ref/network/v2/#floating-ips-floatingips
---*/
SELECT id AS resource_id,
       floating_ip_address AS resource_name,
       project_id,
       CASE WHEN port_id IS NULL THEN 'fail' ELSE 'pass' END AS status,
       'Floating IP ' || coalesce(floating_ip_address, '') || ' (' || id || ') ' ||
       CASE WHEN port_id IS NULL THEN 'is allocated but associated with no port (status '
                                      || coalesce(status, 'unknown') || ').'
            ELSE 'is associated with port ' || port_id
                 || coalesce(' (fixed IP ' || fixed_ip_address || ')', '') || '.' END AS reason
FROM floating_ips
