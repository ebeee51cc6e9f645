//! Two processes of the binary, two workers each, as one timely cluster on 127.0.0.1:
//! the same answers as one worker, and only process 0 writes.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::eqnice;
use crate::util::Workdir;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The arguments of one of two processes on `hosts.txt`, with orders from `orders.csv`.
fn two_processes<'a>(codes: &'a str, connect_timeout: &'a str, process: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--codes",
        codes,
        "--orders",
        "orders.csv",
        "--processes",
        "2",
        "--hostfile",
        "hosts.txt",
        "--connect-timeout",
        connect_timeout,
        "--process",
        process,
    ]
}

/// Waits for a child at most `limit`, killing it past that.
fn wait(mut child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("a cluster process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn two_processes_match_one_worker() {
    let work = Workdir::new("cluster");
    let mut orders = String::from("id,customer_id,item_ct,order_subtotal,discount_code\n");
    for id in 0..300 {
        orders.push_str(&format!(
            "{id},{},{},{}.{:02},C{}\n",
            id % 17,
            id % 9,
            id * 7 % 500,
            id % 100,
            id % 6
        ));
    }
    work.create("orders.csv", &orders);
    work.create(
        "codes.csv",
        "code,percentage\nC0,5\nC1,10\nC2,15\nC3,20\nC4,50\n",
    );
    work.create(
        "u1.csv",
        "op,code,percentage\nupsert,C5,12.5\ndelete,C4\nupsert,C0,50\n",
    );
    work.create("u2.csv", "op,id\ndelete,7\ndelete,8\ndelete,1000\n");
    let hostfile = format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port());
    work.create("hosts.txt", &hostfile);
    let base = [
        "run",
        "--codes",
        "codes.csv",
        "--orders",
        "orders.csv",
        "u1.csv",
        "u2.csv",
        "--format",
        "csv",
    ];

    let single = work.stdout(&[&base[..], &["--changes", "single.csv"]].concat());

    let cluster_args = |process: &'static str| -> Vec<&str> {
        let mut args = base.to_vec();
        args.extend([
            "--changes",
            "cluster.csv",
            "-w",
            "2",
            "--processes",
            "2",
            "--hostfile",
            "hosts.txt",
            "--process",
            process,
        ]);
        args
    };
    let spawn = |process| {
        work.command(&cluster_args(process))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (zero, one) = (spawn("0"), spawn("1"));
    let (zero, one) = (
        wait(zero, Duration::from_secs(60)),
        wait(one, Duration::from_secs(60)),
    );
    assert!(
        zero.status.success(),
        "process 0: {}",
        String::from_utf8_lossy(&zero.stderr)
    );
    assert!(
        one.status.success(),
        "process 1: {}",
        String::from_utf8_lossy(&one.stderr)
    );

    eqnice!(single, String::from_utf8(zero.stdout).unwrap());
    assert!(one.stdout.is_empty(), "only process 0 prints");
    eqnice!(work.read("single.csv"), work.read("cluster.csv"));
}

#[test]
fn a_missing_peer_is_an_error_after_the_wait() {
    let work = Workdir::new("cluster_alone");
    work.create("codes.csv", "code,percentage\nA,5\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,1,A\n",
    );
    let (zero, one) = (free_port(), free_port());
    work.create("hosts.txt", &format!("127.0.0.1:{zero}\n127.0.0.1:{one}\n"));
    let args = |process| two_processes("codes.csv", "1", process);
    let stderr = work.stderr_of_failure(&args("1"));
    assert!(
        stderr.starts_with(&format!(
            "discounting: cannot start the workers: cannot reach process 0 at 127.0.0.1:{zero} within 1s: "
        )),
        "{stderr}"
    );
    eqnice!(
        "discounting: cannot start the workers: process 1 did not connect within 1s\n",
        work.stderr_of_failure(&args("0"))
    );
}

#[test]
fn a_peer_that_dies_stops_the_others_with_a_clear_error() {
    let work = Workdir::new("cluster_peer_dies");
    work.generate(400_000, 0);
    work.create(
        "hosts.txt",
        &format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    );
    let args = |process| two_processes("discount_codes.csv", "10", process);
    let spawn = |process| {
        work.command(&args(process))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let zero = spawn("0");
    let mut one = spawn("1");
    // Loading 400,000 orders takes the debug build about a second: kill process 1 midway.
    std::thread::sleep(Duration::from_millis(300));
    one.kill().unwrap();
    let _ = one.wait();
    let zero = wait(zero, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert_eq!(
        zero.status.code(),
        Some(1),
        "process 0 must fail, not finish or crash: {stderr}"
    );
    assert!(
        stderr.starts_with("discounting: lost the connection to another process of the cluster ("),
        "{stderr}"
    );
    assert!(zero.stdout.is_empty());
}

/// Spawns `discounting` with `args` in `work`, its output piped.
fn spawn(work: &Workdir, args: &[&str]) -> Child {
    work.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_silent_listener_is_an_error_within_the_connect_timeout() {
    let work = Workdir::new("cluster_silent");
    work.create("codes.csv", "code,percentage\nA,5\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,1,A\n",
    );
    // Something else answers on both ports: it accepts and says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let own = free_port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    work.create("hosts.txt", &format!("127.0.0.1:{port}\n127.0.0.1:{own}\n"));
    let started = Instant::now();
    let one = wait(
        spawn(&work, &two_processes("codes.csv", "2", "1")),
        Duration::from_secs(30),
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(one.status.code(), Some(1));
    eqnice!(
        format!("discounting: cannot start the workers: process 0 at 127.0.0.1:{port} did not answer the handshake: no answer within 2s\n"),
        String::from_utf8_lossy(&one.stderr)
    );

    // A connection to process 0 that never says who it is.
    work.create("hosts.txt", &format!("127.0.0.1:{own}\n127.0.0.1:{port}\n"));
    let zero = spawn(&work, &two_processes("codes.csv", "2", "0"));
    let started = Instant::now();
    let _mute = loop {
        match std::net::TcpStream::connect(("127.0.0.1", own)) {
            Ok(stream) => break stream,
            Err(_) if started.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("process 0 does not listen: {e}"),
        }
    };
    let zero = wait(zero, Duration::from_secs(30));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(zero.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert!(
        stderr.starts_with("discounting: cannot start the workers: connection from 127.0.0.1:")
            && stderr.ends_with(" did not say which process it is: no answer within 2s\n"),
        "{stderr}"
    );
}

#[test]
fn processes_with_different_workers_are_one_clear_error() {
    let work = Workdir::new("cluster_workers");
    work.create("codes.csv", "code,percentage\nA,5\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,1,A\n",
    );
    work.create(
        "hosts.txt",
        &format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    );
    let zero = spawn(
        &work,
        &[&two_processes("codes.csv", "20", "0")[..], &["-w", "2"]].concat(),
    );
    let one = spawn(
        &work,
        &[&two_processes("codes.csv", "20", "1")[..], &["-w", "1"]].concat(),
    );
    for (process, output) in [
        ("0", wait(zero, Duration::from_secs(60))),
        ("1", wait(one, Duration::from_secs(60))),
    ] {
        assert_eq!(output.status.code(), Some(1), "process {process}");
        eqnice!(
            "discounting: cannot start the workers: --workers differs between processes: 2 in process 0, 1 in process 1\n",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn a_stopped_peer_ends_the_run_after_the_peer_timeout() {
    let work = Workdir::new("cluster_stopped");
    work.create("codes.csv", "code,percentage\nA,5\n");
    work.create(
        "orders.csv",
        "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,1,A\n",
    );
    std::fs::create_dir_all(work.path("incoming")).unwrap();
    work.create(
        "hosts.txt",
        &format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    );
    // Following a directory, both processes would run until stopped.
    let args = |process| {
        let mut args = two_processes("codes.csv", "20", process);
        args.extend(["--follow", "incoming", "--peer-timeout", "3"]);
        args
    };
    let zero = spawn(&work, &args("0"));
    let mut one = spawn(&work, &args("1"));
    std::thread::sleep(Duration::from_secs(2));
    let signal = |name: &str, child: &Child| {
        let status = std::process::Command::new("kill")
            .args([name, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP", &one);
    let stopped = Instant::now();
    let zero = wait(zero, Duration::from_secs(30));
    let waited = stopped.elapsed();
    one.kill().unwrap();
    let _ = one.wait();
    assert_eq!(zero.status.code(), Some(1));
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    eqnice!(
        "discounting: no word from process 1 for 3s: it is stopped, hung or cut off\n",
        String::from_utf8_lossy(&zero.stderr)
    );
}

#[test]
fn processes_agree_on_file_contents_and_arguments() {
    // Two hosts whose copies of u.csv differ: each process in its own directory.
    let hosts = format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port());
    let dirs: Vec<Workdir> = ["cluster_content_0", "cluster_content_1"]
        .iter()
        .map(|name| {
            let work = Workdir::new(name);
            work.create("codes.csv", "code,percentage\nA,5\n");
            work.create(
                "orders.csv",
                "id,customer_id,item_ct,order_subtotal,discount_code\n1,1,1,1,A\n",
            );
            work.create("hosts.txt", &hosts);
            work
        })
        .collect();
    dirs[0].create("u.csv", "op,id\ndelete,1\n");
    dirs[1].create("u.csv", "op,id\ndelete,2\n");
    let run = |extra: [&[&str]; 2]| -> Vec<String> {
        let children: Vec<Child> = (0..2)
            .map(|p| {
                let mut args = two_processes("codes.csv", "20", ["0", "1"][p]);
                args.extend(extra[p]);
                spawn(&dirs[p], &args)
            })
            .collect();
        children
            .into_iter()
            .map(|child| {
                let output = wait(child, Duration::from_secs(60));
                assert_eq!(output.status.code(), Some(1));
                assert!(output.stdout.is_empty());
                String::from_utf8_lossy(&output.stderr).into_owned()
            })
            .collect()
    };
    let same_length = "discounting: u.csv: differs between processes (length/hash): same length, different content hash\n";
    eqnice!(
        same_length.repeat(2),
        run([&["u.csv"], &["u.csv"]]).concat()
    );

    let lists = "discounting: the update files differ between processes: u.csv in process 0, none in process 1\n";
    eqnice!(lists.repeat(2), run([&["u.csv"], &[]]).concat());
    let bad_rows =
        "discounting: --bad-rows differs between processes: fail in process 0, skip in process 1\n";
    eqnice!(
        bad_rows.repeat(2),
        run([&[], &["--bad-rows", "skip"]]).concat()
    );
}
