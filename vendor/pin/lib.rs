//! Empty: this package exists only so that cargo resolves and downloads the pinned tree.
