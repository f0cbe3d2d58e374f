async def test_sighup_rereads_the_policy_file_and_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    import os
    import signal

    from agentmesh.observability import metrics

    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n", encoding="utf-8")
    mesh = Mesh(
        f"memory://{uuid.uuid4().hex}",
        tenant="t" + uuid.uuid4().hex[:8],
        settings=Settings(agentmesh_data_dir=tmp_path, agentmesh_safety_policy=policy),
    )

    @mesh.agent("reloader-1", capabilities=["echo"])
    async def echo(task: TaskContext) -> dict[str, Any]:
        return dict(task.payload)

    async with mesh:
        guard = mesh.safety
        assert guard is not None
        assert guard._hup, "SIGHUP is handled by the process's loop"
        assert await mesh.run("echo", {"text": "a zebra"}, timeout=10) == {"text": "a zebra"}
        policy.write_text(
            "version: 2\ncontent_filter:\n  blocked_patterns: [zebra]\n", encoding="utf-8"
        )
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: guard.policy.version == 2, timeout=5)
        with pytest.raises(RemoteError):
            await mesh.run("echo", {"text": "a zebra"}, timeout=10)
        policy.write_text("version: 3\nlimits:\n  max_depth: 0\n", encoding="utf-8")
        reloads = guard.reloads
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.2)  # the refused reload leaves no state to wait on
        assert guard.reloads == reloads
        assert guard.policy.version == 2, "a bad file is refused; the last good policy stays"
        exposition = metrics.exposition()[0].decode()
        assert 'agentmesh_safety_violations_total{rule="content_filter",severity="high"}' in (
            exposition
        )
        assert 'agentmesh_alignment_score{agent_id="reloader-1"}' in exposition
