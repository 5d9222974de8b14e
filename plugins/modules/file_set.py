#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: file_set
short_description: Write a set of files into one directory in one step
version_added: "0.1.0"
description:
  - Writes every file of O(files) (file name to content) into the directory O(path), with one
    module run for the whole set, where M(ansible.builtin.template) in a loop runs one or two
    per file. The runbooks role writes its pages with it (28 files).
  - A file is replaced (atomically, through a temporary file in the same directory) only when
    its content differs; its mode, owner and group are set when they differ. C(changed) is true
    only when something was written or an attribute was set.
  - Files in O(path) that are not in O(files) are left alone, except those named in O(absent),
    which are removed in the same run.
  - The directory is created (with O(directory_mode)) when it does not exist, also with an empty
    O(files) (a directory created only when missing; an existing one is left as it is). With only
    O(absent) names (O(files) empty), a missing directory is left missing (nothing to remove).
  - In check mode nothing is written or removed; the result names the files that would be.
author:
  - callcenter.ops maintainers (@callcenter-ops)
extends_documentation_fragment:
  - ansible.builtin.files
  - callcenter.ops.attributes
attributes:
  check_mode:
    support: full
    details: Writes and removes nothing, runs no O(validate) command; names the files that would be written or removed.
  diff_mode:
    support: full
    details: A before/after diff of each file whose content changes.
options:
  path:
    description:
      - The directory the files are written into.
    type: path
    required: true
  files:
    description:
      - File name (no directory part, not C(.) or C(..)) to the file's full content (text,
        written as UTF-8).
    type: dict
    required: true
  absent:
    description:
      - Names of files (plain names, as in O(files)) to remove from O(path) in the same run, as
        M(ansible.builtin.file) with C(state=absent) would, one module run for all of them.
      - A name that is not there is not an error. A name that is a directory there is refused.
      - A name may not be in both O(files) and O(absent).
    type: list
    elements: str
    default: []
  mode:
    description:
      - Mode of every file, as for M(ansible.builtin.file).
    type: raw
    default: "0644"
  validate:
    description:
      - A command to check each file's new content before it replaces the file, as for
        M(ansible.builtin.template); C(%s) is replaced by the path of a temporary file holding
        that content (the name ends with the file's name), for example C(promtool check rules %s).
      - Run for every file whose content changes (not for unchanged ones, not in check mode), all of
        them before anything is written; when one exits non-zero the task fails with the file's name
        and the command's output, and no file is written, removed, or created.
    type: str
  directory_mode:
    description:
      - Mode of O(path) when this module creates it. An existing directory keeps its mode.
    type: raw
    default: "0755"
notes:
  - O(owner), O(group) and the SELinux options apply to every file, and to O(path) when this
    module creates it.
'''

EXAMPLES = r'''
- name: Write the rendered pages in one step
  callcenter.ops.file_set:
    path: /srv/www/runbooks
    files:
      index.md: "{{ lookup('ansible.builtin.template', 'index.md.j2') }}"
      index.html: "{{ lookup('ansible.builtin.template', 'index.html.j2') }}"
    mode: "0644"

- name: Write two rule files, each checked by promtool before it replaces the old one
  callcenter.ops.file_set:
    path: /etc/prometheus/rules
    files:
      a.rules.yml: "{{ lookup('ansible.builtin.template', 'a.rules.yml.j2') }}"
      b.rules.yml: "{{ lookup('ansible.builtin.template', 'b.rules.yml.j2') }}"
    validate: promtool check rules %s

- name: Remove the systemd timer and service (cron runs the job now) in one step
  callcenter.ops.file_set:
    path: /etc/systemd/system
    files: {}
    absent:
      - callcenter-celery-metrics.timer
      - callcenter-celery-metrics.service
'''

RETURN = r'''
written:
  description:
    - Names of the files whose content was written (or would be, in check mode), sorted.
    - On a failure after the parameter checks (a file that could not be written), the files
      written (and removed) before it; these four keys are returned then too.
  returned: always
  type: list
  elements: str
  sample: [celery-worker-down.html, celery-worker-down.md]
attributes_set:
  description: Names of the files whose content was already right but whose mode, owner or group was set, sorted.
  returned: always
  type: list
  elements: str
  sample: []
unchanged:
  description: How many files were left as they were (on a failure, of those looked at before it).
  returned: always
  type: int
  sample: 26
removed:
  description:
    - Names from O(absent) that were there and were removed (or would be, in check mode), sorted.
  returned: always
  type: list
  elements: str
  sample: [callcenter-celery-metrics.timer]
invalid:
  description: The file whose new content O(validate) refused (no file was written then).
  returned: when the validate command refused a file
  type: str
  sample: alertmanager.yml
rc:
  description: Exit status of the O(validate) command that refused the file.
  returned: when the validate command refused a file
  type: int
  sample: 1
stdout:
  description: What that command printed (its last 2000 characters; the temporary file's path shown as the file's name).
  returned: when the validate command refused a file
  type: str
stderr:
  description: Its error output, the same way.
  returned: when the validate command refused a file
  type: str
  sample: "  FAILED: yaml: unmarshal errors"
stdout_lines:
  description: RV(stdout) split into lines (added by Ansible).
  returned: when the validate command refused a file
  type: list
  elements: str
stderr_lines:
  description: RV(stderr) split into lines (added by Ansible).
  returned: when the validate command refused a file
  type: list
  elements: str
'''

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native


def bad_names(names):
    """The file names that are not a plain name inside the directory."""
    return sorted(n for n in names if not n or n in (".", "..") or "/" in n or "\x00" in n)


def current_bytes(dest):
    """The file's content, or None when there is no regular file there."""
    if not os.path.isfile(dest) or os.path.islink(dest):
        return None
    with open(dest, "rb") as f:
        return f.read()


def write_atomically(module, directory, dest, data):
    fd, tmp = tempfile.mkstemp(prefix=".file_set.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        module.atomic_move(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def validate_content(module, command, name, data):
    """Run the validate command on the new content in a temporary file; fail, naming the file, when it refuses it."""
    fd, tmp = tempfile.mkstemp(prefix=".file_set.", suffix="-" + name, dir=module.tmpdir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        rc, out, err = module.run_command(command % tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if rc != 0:
        out, err = to_native(out).replace(tmp, name), to_native(err).replace(tmp, name)
        said = (out + err).strip()
        module.fail_json(msg="failed to validate the new content of %s, so no file was replaced: `%s` exited with %s: %s"
                             % (name, command % name, rc, said[-2000:] or "(no output)"),
                         written=[], attributes_set=[], unchanged=0, removed=[],
                         invalid=name, rc=rc, stdout=out[-2000:], stderr=err[-2000:])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            files=dict(type="dict", required=True),
            absent=dict(type="list", elements="str", default=[]),
            mode=dict(type="raw", default="0644"),
            directory_mode=dict(type="raw", default="0755"),
            validate=dict(type="str"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    directory = p["path"]
    wrong = bad_names(list(p["files"]) + list(p["absent"]))
    if wrong:
        module.fail_json(msg="file names in files and absent must be plain names inside path, without '/' (got: %s)"
                             % ", ".join(repr(n) for n in wrong))
    both = sorted(set(p["files"]) & set(p["absent"]))
    if both:
        module.fail_json(msg="a file cannot be both written and removed; these names are in files and in absent: %s"
                             % ", ".join(both))
    not_text = sorted(n for n, c in p["files"].items() if not isinstance(c, str))
    if not_text:
        module.fail_json(msg="every file's content must be text (not for: %s)" % ", ".join(not_text))
    if p["validate"] is not None and "%s" not in p["validate"]:
        module.fail_json(msg="validate must contain %%s where the file to check goes (got: %s)" % p["validate"])
    written, attributes_set, unchanged, removed, diffs = [], [], [], [], []

    def fail(msg):
        """A failure after the parameter checks: what was done so far, with the reason."""
        module.fail_json(msg=msg, written=written, attributes_set=attributes_set, unchanged=len(unchanged),
                         removed=removed)

    if os.path.exists(directory) and not os.path.isdir(directory):
        fail("path %s exists and is not a directory" % directory)

    changing = []
    for name in sorted(p["files"]):
        dest = os.path.join(directory, name)
        try:
            before = current_bytes(dest)
        except (IOError, OSError) as e:
            fail("could not read %s: %s" % (dest, to_native(e.strerror or e)))
        if before != to_bytes(p["files"][name], errors="surrogate_or_strict"):
            changing.append(name)
            if module._diff:
                diffs.append(dict(before_header=dest, after_header=dest,
                                  before="" if before is None else to_native(before, errors="surrogate_then_replace"),
                                  after=p["files"][name]))

    if p["validate"] is not None and not module.check_mode:
        for name in changing:  # every new content is checked before any file (or the directory) is touched
            validate_content(module, p["validate"], name, to_bytes(p["files"][name], errors="surrogate_or_strict"))

    changed = False
    if not os.path.isdir(directory) and (p["files"] or not p["absent"]):
        changed = True
        if not module.check_mode:
            try:
                os.makedirs(directory)
            except OSError as e:
                fail("could not create the directory %s: %s" % (directory, to_native(e.strerror or e)))
            dir_args = module.load_file_common_arguments(p, path=directory)
            dir_args["mode"] = p["directory_mode"]
            module.set_fs_attributes_if_different(dir_args, False)

    for name in sorted(p["files"]):
        dest = os.path.join(directory, name)
        if name in changing:
            if not module.check_mode:
                try:
                    write_atomically(module, directory, dest, to_bytes(p["files"][name], errors="surrogate_or_strict"))
                except (IOError, OSError) as e:
                    fail("could not write %s: %s" % (dest, to_native(e.strerror or e)))
            written.append(name)
        if module.check_mode and not os.path.exists(dest):
            continue
        file_args = module.load_file_common_arguments(p, path=dest)
        if module.set_fs_attributes_if_different(file_args, False) and name not in written:
            attributes_set.append(name)
        elif name not in written:
            unchanged.append(name)

    for name in sorted(set(p["absent"])):
        dest = os.path.join(directory, name)
        if not os.path.lexists(dest):
            continue
        if os.path.isdir(dest) and not os.path.islink(dest):
            fail("%s is a directory; absent removes files only" % dest)
        if module._diff:
            try:
                before = current_bytes(dest)
            except (IOError, OSError):
                before = None
            diffs.append(dict(before_header=dest, after_header="%s (absent)" % dest,
                              before="" if before is None else to_native(before, errors="surrogate_then_replace"),
                              after=""))
        if not module.check_mode:
            try:
                os.unlink(dest)
            except (IOError, OSError) as e:
                fail("could not remove %s: %s" % (dest, to_native(e.strerror or e)))
        removed.append(name)

    changed = changed or bool(written) or bool(attributes_set) or bool(removed)
    result = dict(changed=changed, written=written, attributes_set=attributes_set, unchanged=len(unchanged),
                  removed=removed)
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
