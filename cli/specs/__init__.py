"""Fission spec files: a ``specs/`` directory of YAML documents in Fission's format, for faasd.

``fission.io/v1`` documents (Environment, Package, Function, HTTPTrigger,
TimeTrigger, MessageQueueTrigger, KubernetesWatchTrigger), with the two local
kinds of Fission's CLI: ``DeploymentConfig`` (the deployment's uid) and
``ArchiveUploadSpec`` (the files a package's archive is made of).

- :mod:`.schema`: the kinds, their fields as Fission's CRDs define them, and
  the labels and annotations faasd reads and writes;
- :mod:`.model`: reading a spec directory and checking it;
- :mod:`.archives`: ArchiveUploadSpec: globs to files, the zip uploaded, and the
  digest faasd will give it (so an unchanged archive is not sent again);
- :mod:`.mapping`: Fission documents to the faasd objects they ask for, and back;
- :mod:`.plan`: what an apply creates, updates and deletes, and doing it;
- :mod:`.api`: the API calls, with labels;
- :mod:`.export`: a running faasd as a spec directory;
- :mod:`.files`: writing documents (``spec init``, ``fn create --spec``).
"""
