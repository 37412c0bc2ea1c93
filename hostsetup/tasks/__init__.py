"""hostsetup's task collection: what ``hostsetup --list`` shows."""

from invoke import Collection

from hostsetup.tasks.sandbox import sandbox

namespace = Collection(sandbox)
