# -*- coding: utf-8 -*-
"""The agent's exceptions."""

from __future__ import absolute_import, division, print_function


class AgentInterrupted(BaseException):
    """Raised from the SIGTERM/SIGHUP handler; unwinds through every finally."""

    def __init__(self, signum):
        BaseException.__init__(self, signum)
        self.signum = signum


class ExperimentError(Exception):
    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.msg = message


class SkipExperiment(Exception):
    def __init__(self, message):
        Exception.__init__(self, message)
        self.msg = message
