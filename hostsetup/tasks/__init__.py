"""hostsetup's task collection: what ``hostsetup --list`` shows."""

from invoke.collection import Collection

from hostsetup.tasks.bundle import bundle
from hostsetup.tasks.cloudinit import cloud_init
from hostsetup.tasks.configure import configure
from hostsetup.tasks.demo import demo
from hostsetup.tasks.doctor import doctor
from hostsetup.tasks.install import install
from hostsetup.tasks.login import login
from hostsetup.tasks.portainer import portainer
from hostsetup.tasks.sandbox import sandbox
from hostsetup.tasks.uninstall import uninstall
from hostsetup.tasks.verify import verify

namespace = Collection(bundle, cloud_init, configure, demo, doctor, install, login, portainer, sandbox, uninstall,
                       verify)
