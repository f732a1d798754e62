//! How much of a dashboard socket's output actix holds: the server's
//! `h1_write_buffer_size`, sized against the write buffer actix gives each
//! connection.

use super::frame_header::MAX_HEADER;
use crate::hub::MAX_FRAME_BYTES;

/// The capacity actix-http gives a connection's write buffer, which grows only when
/// more is put in it. actix-http keeps it private (`HW_BUFFER_SIZE` in its
/// `h1/dispatcher.rs`) and no public API says it, so it is written here, and
/// `tests::actix_gives_a_connection_the_write_buffer_counted_on` measures it through
/// actix-http's public upgrade hook: an actix upgrade that changes it fails that
/// test rather than silently letting every slow socket's buffer grow.
pub const ACTIX_WRITE_BUFFER: usize = 8 * 1024;

/// How full a connection's write buffer may be for actix to take the next chunk of a
/// response body (the server's `h1_write_buffer_size`): so little that one more frame
/// of at most [`MAX_FRAME_BYTES`] still fits [`ACTIX_WRITE_BUFFER`], and so a socket
/// holds at most one frame there and the buffer never grows. At actix's default, a
/// feed whose client read slowly was asked for frame after frame while they waited
/// in the buffer, which grew and stayed grown, a multiple of the consumer's memory
/// with many slow sockets (docs/benchmarks.md). A webhook's whole answer, with the
/// longest request id a caller may send, is under it, so it is still written in one
/// piece: `a_webhook_answer_is_shorter_than_the_write_buffer_fill…` in the
/// consumer's tests checks that.
pub const WRITE_BUFFER_FILL: usize = ACTIX_WRITE_BUFFER - (MAX_FRAME_BYTES + MAX_HEADER);

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Framed;
    use actix_http::{HttpService, Request, Response, h1};
    use actix_web::dev::{Service as _, ServiceFactory as _, fn_service};
    use actix_web::rt::net::{TcpListener, TcpStream};
    use tokio::io::AsyncWriteExt as _;
    use tokio::sync::mpsc;

    /// actix-http hands an upgrade service the connection's own write buffer,
    /// still empty, so its capacity is the one every connection is given.
    #[actix_web::test]
    async fn actix_gives_a_connection_the_write_buffer_counted_on() {
        let (capacity_tx, mut capacity) = mpsc::unbounded_channel();
        let upgrade = fn_service(
            move |(_, framed): (Request, Framed<TcpStream, h1::Codec>)| {
                let capacity_tx = capacity_tx.clone();
                async move {
                    let _ = capacity_tx.send(framed.into_parts().write_buf.capacity());
                    Ok::<_, actix_http::Error>(())
                }
            },
        );
        let ok = fn_service(|_: Request| async { Ok::<_, actix_http::Error>(Response::ok()) });
        let factory = HttpService::build().upgrade(upgrade).h1(ok).tcp();
        let service = factory.new_service(()).await.expect("an HTTP/1 service");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let mut client = TcpStream::connect(listener.local_addr().expect("an address"))
            .await
            .expect("connects");
        let (connection, _) = listener.accept().await.expect("accepted");
        actix_web::rt::spawn(service.call(connection));

        let upgrade_request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\n\
                               Upgrade: websocket\r\n\r\n";
        client
            .write_all(upgrade_request.as_bytes())
            .await
            .expect("sent");

        let given = capacity.recv().await.expect("the upgrade service ran");
        assert_eq!(
            given, ACTIX_WRITE_BUFFER,
            "actix-http now gives a connection a {given}-byte write buffer: set \
             ACTIX_WRITE_BUFFER to it"
        );
    }
}
