"""What every stage shares: validated params, artifact paths and atomic writers, seeds, errors.

``params`` (typed ``params.yaml``), ``paths`` (where each artifact lives), ``artifacts`` (atomic
writers), ``seeding`` (random streams from the one ``seed``), ``errors`` (what reaches a user as a
message), ``cli`` (stage entry points), ``text`` (message helpers), ``upgrade`` (what a project an
earlier alr ran must change first).
"""
